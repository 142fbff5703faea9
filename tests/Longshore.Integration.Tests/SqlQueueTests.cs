using System.Data.Common;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using MySqlConnector;
using Npgsql;

namespace Longshore.Integration.Tests;

/// <summary>
/// The sqlquery source against each real database: rows become tasks once, the watermark survives a restart, and the
/// query cannot write. One suite, inherited per database.
/// </summary>
public abstract class SqlQueueTests : IAsyncLifetime
{
    private LongshoreServer _server = null!;

    protected string Table { get; } = "jobs_" + Guid.NewGuid().ToString("N")[..10];

    /// <summary>The jdbc: connection string the queue uses.</summary>
    protected abstract string ConnString { get; }

    protected abstract DbConnection Open();

    public async Task InitializeAsync()
    {
        await ExecuteAsync($"CREATE TABLE {Table} (id INTEGER PRIMARY KEY, payload VARCHAR(200))");
        _server = await LongshoreServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await ExecuteAsync($"DROP TABLE {Table}");
    }

    protected LongshoreServer Server => _server;

    protected Dictionary<string, object> Queue(string id, string query, string? connString = null) => QueueDefinitions.Create(id, "echo $HIPPO_DATA", "sqlquery",
        new Dictionary<string, string> { ["conn_string"] = connString ?? ConnString, ["query"] = query, ["filter_field"] = "id", ["filter_val"] = "1" },
        new() { ["frequency_seconds"] = 1 });

    [Fact]
    public async Task NewRows_BecomeTasksOnce_AndTheWatermarkSurvivesARestart()
    {
        var id = Families.New("sql");
        await ExecuteAsync($"INSERT INTO {Table} (id, payload) VALUES (1, 'before the start value'), (2, 'two'), (3, 'three')");
        (await _server.Http.PostAsJsonAsync("/queues/", Queue(id, $"SELECT id, payload FROM {Table}"))).EnsureSuccessStatusCode();

        await WaitForRunsAsync(id, 2);
        await _server.KillHardAsync();
        await ExecuteAsync($"INSERT INTO {Table} (id, payload) VALUES (4, 'four')");
        await _server.StartAgainAsync();
        // Runs the crash caught mid-launch come back as retries, so wait for row 4's own chain, not a run count.
        static bool HeadsRowFour(JsonElement run) => run.GetProperty("retry_of").ValueKind == JsonValueKind.Null
            && run.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!.Contains("four", StringComparison.Ordinal);
        await Eventually.WaitUntilAsync(async () => (await RunsAsync(id)).Any(HeadsRowFour), TimeSpan.FromSeconds(60), () => _server.Output);
        await Task.Delay(2500);
        var runs = await RunsAsync(id);

        // A run the crash caught mid-launch ends TASK_LOST and is retried with the same payload: that is one task, one
        // retry chain. So each row must head exactly one chain and finish exactly once.
        static long Row(JsonElement run) => JsonDocument.Parse(run.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!).RootElement[0].GetInt64();
        var described = string.Join("\n", runs.Select(r => $"{Row(r)} {r.GetProperty("mesos_state")} retry_of={r.GetProperty("retry_of")} {r.GetProperty("reason")}"));
        var heads = runs.Where(r => r.GetProperty("retry_of").ValueKind == JsonValueKind.Null).ToList();
        Assert.True(heads.Select(Row).Order().SequenceEqual([2L, 3L, 4L]), described);
        await WaitUntilAllEndedAsync(id);
        var finished = (await RunsAsync(id)).Where(r => r.GetProperty("mesos_state").GetString() == "TASK_FINISHED").Select(Row).Order().ToList();
        Assert.True(finished.SequenceEqual([2L, 3L, 4L]), described);
    }

    /// <summary>Only PostgreSQL can write from inside a SELECT (a data-modifying WITH); there the read-only transaction must refuse it.</summary>
    protected async Task<string> AssertWritingQueryRefusedAsync(string writingQuery)
    {
        var id = Families.New("sqlwrite");
        await ExecuteAsync($"INSERT INTO {Table} (id, payload) VALUES (5, 'keep me')");
        (await _server.Http.PostAsJsonAsync("/queues/", Queue(id, writingQuery))).EnsureSuccessStatusCode();

        string? error = null;
        var watch = Stopwatch.StartNew();
        while (error is null && watch.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(300);
            var queue = JsonDocument.Parse(await _server.Http.GetStringAsync($"/queues/{id}/")).RootElement;
            error = queue.GetProperty("stats").GetProperty("last_error").GetString();
        }

        Assert.NotNull(error);
        Assert.Equal(1L, Convert.ToInt64(await ScalarAsync($"SELECT COUNT(*) FROM {Table} WHERE id = 5"), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Empty(await RunsAsync(id));
        Assert.DoesNotContain("longshore:longshore", _server.Output, StringComparison.Ordinal);
        return error!;
    }

    protected async Task ExecuteAsync(string sql)
    {
        await using var db = Open();
        await db.OpenAsync();
        await using var command = db.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    private async Task<object?> ScalarAsync(string sql)
    {
        await using var db = Open();
        await db.OpenAsync();
        await using var command = db.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync();
    }

    protected Task<List<JsonElement>> RunsAsync(string id) => _server.RunsAsync(id);

    private Task WaitUntilAllEndedAsync(string id) => Eventually.WaitUntilAsync(
        async () => (await RunsAsync(id)).All(r => TestStates.IsTerminal(r.GetProperty("mesos_state").GetString()!)), TimeSpan.FromSeconds(60), () => _server.Output);

    protected async Task<List<JsonElement>> WaitForRunsAsync(string id, int count)
    {
        await Eventually.WaitUntilAsync(async () => (await RunsAsync(id)).Count >= count, TimeSpan.FromSeconds(30), () => _server.Output);
        return await RunsAsync(id);
    }
}

public sealed class PostgresQueueTests : SqlQueueTests
{
    private static readonly string Url = TestServices.PostgresUrl;

    private const string SecretVariable = "LONGSHORE_SECRET_PG_TEST";

    // The server inherits the test process's environment, so it can resolve ${env:…} references to this variable.
    public PostgresQueueTests() => Environment.SetEnvironmentVariable(SecretVariable, Url);

    protected override string ConnString => Url;

    [Fact]
    public async Task ConnStringAsAnEnvironmentReference_IsUsed_AndShownAsWritten_ABadOneIsRefusedNamingTheField()
    {
        var id = Families.New("sqlref");
        await ExecuteAsync($"INSERT INTO {Table} (id, payload) VALUES (2, 'two'), (3, 'three')");
        var reference = "${env:" + SecretVariable + "}";

        (await Server.Http.PostAsJsonAsync("/queues/", Queue(id, $"SELECT id, payload FROM {Table}", reference))).EnsureSuccessStatusCode();
        var missing = await Server.Http.PostAsJsonAsync("/queues/", Queue(Families.New("sqlref"), $"SELECT id FROM {Table}", "${env:LONGSHORE_SECRET_NOT_SET_ANYWHERE}"));
        var forbidden = await Server.Http.PostAsJsonAsync("/queues/", Queue(Families.New("sqlref"), $"SELECT id FROM {Table}", "${env:LONGSHORE_TOKENS}"));

        var runs = await WaitForRunsAsync(id, 2);
        Assert.Equal(2, runs.Count);
        var shown = JsonDocument.Parse(await Server.Http.GetStringAsync($"/queues/{id}/")).RootElement;
        Assert.Equal(reference, shown.GetProperty("queue").GetProperty("sqlquery").GetProperty("conn_string").GetString());
        Assert.Equal(400, (int)missing.StatusCode);
        Assert.Equal("queue.sqlquery.conn_string: environment variable LONGSHORE_SECRET_NOT_SET_ANYWHERE is not set on the server",
            JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
        Assert.Equal(400, (int)forbidden.StatusCode);
        Assert.Contains("queue.sqlquery.conn_string: ${env:NAME} may only name a variable starting with LONGSHORE_SECRET_", await forbidden.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(1, (await Server.Http.GetFromJsonAsync<JsonElement>("/queues/")).EnumerateArray().Count(q => q.GetProperty("id").GetString()!.StartsWith("sqlref", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task AQueryThatWrites_IsRefusedByTheReadOnlyTransaction_NothingChanges()
    {
        // A plain SELECT that deletes through a function: only the read-only transaction stands in its way.
        await ExecuteAsync($"CREATE FUNCTION {Table}_purge() RETURNS integer LANGUAGE sql AS 'DELETE FROM {Table}; SELECT 1'");
        var error = await AssertWritingQueryRefusedAsync($"SELECT id, payload FROM {Table} WHERE {Table}_purge() = 1");
        await ExecuteAsync($"DROP FUNCTION {Table}_purge()");

        Assert.Contains("read-only transaction", error, StringComparison.Ordinal);
    }

    protected override DbConnection Open() => new NpgsqlConnection(TestServices.Postgres);
}

public sealed class MariaDbQueueTests : SqlQueueTests
{
    private static readonly string Url = TestServices.MySqlUrl;

    protected override string ConnString => Url;


    protected override DbConnection Open() => new MySqlConnection(TestServices.MySql);
}

public sealed class SqliteQueueTests : SqlQueueTests
{
    private static readonly string File = Path.Combine(Path.GetTempPath(), "longshore-sqlsource-" + Guid.NewGuid().ToString("N") + ".db");

    protected override string ConnString => "jdbc:sqlite:" + File;


    protected override DbConnection Open() => new SqliteConnection($"Data Source={File}");
}
