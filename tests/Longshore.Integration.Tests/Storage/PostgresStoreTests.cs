using Longshore.Core.Queues;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;
using Longshore.Storage.Postgres;
using Npgsql;

namespace Longshore.Integration.Tests.Storage;

/// <summary>The compliance suite on the real PostgreSQL, in a schema of its own per test.</summary>
public sealed class PostgresStoreTests : StoreComplianceTests
{
    private readonly string _schema = TestServices.UniqueName("store");
    private string _connectionString = string.Empty;

    protected override async Task<IStateStore> OpenStoreAsync()
    {
        _connectionString = await TestServices.CreatePostgresSchemaAsync(_schema);
        return await PostgresStore.OpenAsync(_connectionString);
    }

    protected override async Task<IStateStore> OpenSecondClientAsync() => await PostgresStore.OpenAsync(_connectionString);

    protected override Task DropStoreAsync() => TestServices.DropPostgresSchemaAsync(_schema);

    [Fact]
    public void Description_ConnectionStringWithPassword_HidesIt()
    {
        Assert.DoesNotContain("longshore_secret", PostgresStore.Redact("Host=127.0.0.1;Username=u;Password=longshore_secret;Database=d"), StringComparison.Ordinal);
        Assert.DoesNotContain("assword", Store.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upgrade_FromBeforeBatchOutcomes_FindsTheBatchesWhoseRunsHadAlreadyEnded()
    {
        // A batch whose run ended, and one whose run still waits, as an older schema held them (no outcome column).
        var queue = new StoredQueue { Id = "up", Template = new TaskDefinition { Id = "up", Cmd = "echo" }, Block = new QueueBlock { Type = "cron", Name = "up" }, CreatedAt = T0 };
        await Store.CreateQueueAsync(queue);
        var ended = NewRun("up", queueId: "up", messageKey: "ended");
        var waiting = NewRun("up", queueId: "up", messageKey: "waiting");
        await Store.EnqueueAsync("up", [new QueueBatch(ended, ["h1"]), new QueueBatch(waiting, ["h2"])], new Dictionary<string, string>());
        await Store.TryTransitionAsync(Move(ended, TaskState.WaitingOnOffers, TaskState.Failed));
        await using (var downgrade = new NpgsqlConnection(_connectionString))
        {
            await downgrade.OpenAsync();
            await using var command = new NpgsqlCommand("""
                ALTER TABLE queue_batches DROP COLUMN outcome;
                DELETE FROM schema_version WHERE version = (SELECT MAX(version) FROM schema_version);
                """, downgrade);
            await command.ExecuteNonQueryAsync();
        }

        await using var upgraded = await PostgresStore.OpenAsync(_connectionString);

        var found = Assert.Single(await upgraded.ListEndedBatchesAsync(10));
        Assert.Equal(("ended", false, "h1"), (found.MessageKey, found.Succeeded, Assert.Single(found.Handles)));
    }

    [Fact]
    public async Task TakeOver_WhileAFrozenLeaderHoldsTheLeaseRowInAWrite_GoesThroughOnceTheServerEndsThatTransaction()
    {
        var limit = TimeSpan.FromSeconds(1);
        await Store.TryAcquireLeaseAsync("frozen", TimeSpan.FromSeconds(10), T0);
        // What a leader frozen inside a fenced write leaves behind: a session with the store's settings, in a transaction
        // holding the share lock on the lease row, that sends nothing more.
        await using var frozen = new NpgsqlConnection(PostgresStore.SessionConnectionString(_connectionString, limit));
        await frozen.OpenAsync();
        await using var transaction = await frozen.BeginTransactionAsync();
        await using (var share = new NpgsqlCommand("SELECT term FROM leases WHERE name = 'scheduler' FOR SHARE;", frozen, transaction))
            Assert.Equal(1L, await share.ExecuteScalarAsync());

        await using var successor = await PostgresStore.OpenAsync(_connectionString, limit);
        // Without the limit this waits on the row lock for as long as the frozen process lives (here: forever).
        var taken = await successor.TryAcquireLeaseAsync("successor", TimeSpan.FromSeconds(10), T0.AddSeconds(11)).WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(new Lease("successor", 2, T0.AddSeconds(21)), taken);

        // When it thaws, its transaction is gone: nothing it sends under it can commit.
        await using var late = new NpgsqlCommand("UPDATE leases SET holder = 'frozen' WHERE name = 'scheduler';", frozen, transaction);
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => late.ExecuteNonQueryAsync());
        Assert.Equal(taken, await Store.GetLeaseAsync());
    }
}
