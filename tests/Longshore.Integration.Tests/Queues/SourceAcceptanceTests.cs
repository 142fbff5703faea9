using System.Data.Common;
using System.Text;
using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using MySqlConnector;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Npgsql;
using StackExchange.Redis;

namespace Longshore.Integration.Tests.Queues;

public sealed class RedisQueueAcceptanceTests : QueueAcceptanceTests
{
    private static readonly string Host = Environment.GetEnvironmentVariable("LONGSHORE_TEST_REDIS") ?? "127.0.0.1:6379";
    private ConnectionMultiplexer? _redis;

    private string List => "list-" + Id;

    protected override string Type => "redis";

    protected override async Task PrepareAsync() => _redis = await ConnectionMultiplexer.ConnectAsync(Host);

    protected override async Task CleanupAsync() => await _redis!.DisposeAsync();

    protected override Dictionary<string, string> Settings() => new() { ["host"] = Host.Split(':')[0], ["port"] = Host.Split(':')[1], ["name"] = List };

    protected override Task PushAsync(IReadOnlyList<string> payloads) => _redis!.GetDatabase().ListRightPushAsync(List, payloads.Select(p => (RedisValue)p).ToArray());

    protected override async Task<bool> DrainedAsync() =>
        await _redis!.GetDatabase().ListLengthAsync(List) == 0 && await _redis.GetDatabase().ListLengthAsync($"longshore:processing:{Id}") == 0;
}

#pragma warning disable CA1001 // Disposed in CleanupAsync, which xunit's DisposeAsync calls.
public sealed class NatsQueueAcceptanceTests : QueueAcceptanceTests
#pragma warning restore CA1001
{
    private static readonly string Url = Environment.GetEnvironmentVariable("LONGSHORE_TEST_NATS") ?? "nats://127.0.0.1:4222";
    private readonly string _stream = "ACC" + Guid.NewGuid().ToString("N")[..10].ToUpperInvariant();
    private NatsConnection? _nats;
    private NatsJSContext? _js;

    private string Subject => "accept." + _stream.ToLowerInvariant();

    protected override string Type => "nats";

    protected override async Task PrepareAsync()
    {
        _nats = new NatsConnection(new NatsOpts { Url = Url });
        _js = new NatsJSContext(_nats);
        await _js.CreateStreamAsync(new StreamConfig(_stream, [Subject]));
    }

    protected override async Task CleanupAsync()
    {
        await _js!.DeleteStreamAsync(_stream);
        await _nats!.DisposeAsync();
    }

    protected override Dictionary<string, string> Settings() => new() { ["url"] = Url, ["stream"] = _stream, ["subject"] = Subject };

    protected override async Task PushAsync(IReadOnlyList<string> payloads)
    {
        foreach (var payload in payloads)
            await _js!.PublishAsync(Subject, Encoding.UTF8.GetBytes(payload));
    }

    protected override async Task<bool> DrainedAsync()
    {
        var consumer = await _js!.GetConsumerAsync(_stream, "longshore-" + Id.Replace('.', '-'));
        return consumer.Info.NumAckPending == 0 && consumer.Info.NumPending == 0;
    }
}

/// <summary>sqlquery: each message is a row; the payload is the row as JSON.</summary>
public abstract class SqlQueueAcceptanceTests : QueueAcceptanceTests
{
    private string Table => "acc_" + Id.Replace('-', '_');

    protected override string Type => "sqlquery";

    protected abstract string ConnString { get; }

    protected abstract DbConnection Open();

    protected override Task PrepareAsync() => ExecuteAsync($"CREATE TABLE {Table} (id INTEGER PRIMARY KEY, payload VARCHAR(200))");

    protected override Task CleanupAsync() => ExecuteAsync($"DROP TABLE {Table}");

    protected override Dictionary<string, string> Settings() =>
        new() { ["conn_string"] = ConnString, ["query"] = $"SELECT id, payload FROM {Table}", ["filter_field"] = "id", ["filter_val"] = "0" };

    protected override async Task PushAsync(IReadOnlyList<string> payloads)
    {
        await using var db = Open();
        await db.OpenAsync();
        await using var transaction = await db.BeginTransactionAsync();
        var next = 1 + Convert.ToInt64(await ScalarAsync(db, transaction, $"SELECT COALESCE(MAX(id), 0) FROM {Table}"), System.Globalization.CultureInfo.InvariantCulture);
        foreach (var payload in payloads)
        {
            await using var insert = db.CreateCommand();
            insert.Transaction = transaction;
            insert.CommandText = $"INSERT INTO {Table} (id, payload) VALUES (@id, @payload)";
            AddParameter(insert, "@id", next++);
            AddParameter(insert, "@payload", payload);
            await insert.ExecuteNonQueryAsync();
        }

        await transaction.CommitAsync();
    }

    // Rows are not settled at the source: the watermark, stored with the tasks, is what moves.
    protected override Task<bool> DrainedAsync() => Task.FromResult(true);

    // Hippo's payload: the row's values in column order (id, payload).
    protected override string MessageOf(string payloadPart) => JsonDocument.Parse(payloadPart).RootElement[1].GetString()!;

    private static void AddParameter(DbCommand command, string name, object value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value;
        command.Parameters.Add(parameter);
    }

    private static async Task<object?> ScalarAsync(DbConnection db, DbTransaction? transaction, string sql)
    {
        await using var command = db.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return await command.ExecuteScalarAsync();
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var db = Open();
        await db.OpenAsync();
        await ScalarAsync(db, null, sql);
    }
}

public sealed class PostgresQueueAcceptanceTests : SqlQueueAcceptanceTests
{
    protected override string ConnString => TestServices.PostgresUrl;

    protected override DbConnection Open() => new NpgsqlConnection(TestServices.Postgres);
}

public sealed class MariaDbQueueAcceptanceTests : SqlQueueAcceptanceTests
{
    protected override string ConnString => TestServices.MySqlUrl;

    protected override DbConnection Open() => new MySqlConnection(TestServices.MySql);
}

public sealed class SqliteQueueAcceptanceTests : SqlQueueAcceptanceTests
{
    private readonly string _file = Path.Combine(Path.GetTempPath(), "longshore-accept-" + Guid.NewGuid().ToString("N") + ".db");

    protected override string ConnString => "jdbc:sqlite:" + _file;

    protected override DbConnection Open() => new SqliteConnection($"Data Source={_file};Pooling=False");
}
