using Longshore.Core.Queues;
using Longshore.Core.Tasks;
using Longshore.Storage.Sqlite;

namespace Longshore.Integration.Tests.Storage;

/// <summary>
/// The store's side of queue de-duplication, the same for every store: keys recorded with a batch are found for 24 h,
/// a redelivery's handle replaces the old one in the unsettled batch, and releasing a batch forgets its keys.
/// </summary>
public abstract class QueueDedupComplianceTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = TestClock.Now(TimeSpan.FromSeconds(1));
    private readonly string _queue = "dedup-" + Guid.NewGuid().ToString("N")[..8];
    private IQueueStore _store = null!;

    /// <summary>A fresh, empty store of the kind under test.</summary>
    protected abstract Task<IQueueStore> OpenStoreAsync();

    protected abstract Task CloseStoreAsync();

    public async Task InitializeAsync() => _store = await OpenStoreAsync();

    public Task DisposeAsync() => CloseStoreAsync();

    private async Task<string> EnqueueAsync(params (string Key, string Handle)[] messages)
    {
        var definition = new TaskDefinition { Id = _queue, Cmd = "true", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } };
        var messageKey = Guid.NewGuid().ToString("N");
        var run = TaskRun.CreateFirst(definition, Guid.NewGuid(), Now) with { QueueId = _queue, MessageKey = messageKey };
        var batch = new QueueBatch(run, messages.Select(m => m.Handle).ToList()) { DedupKeys = messages.Select(m => new DedupEntry(m.Key, m.Handle)).ToList() };
        await _store.EnqueueAsync(_queue, [batch], new Dictionary<string, string>());
        return messageKey;
    }

    [Fact]
    public async Task FindSeen_ReturnsOnlyRecordedKeys_WithTheirBatchAndHandle()
    {
        var batch = await EnqueueAsync(("k1", "h1"), ("k2", "h2"));

        var seen = await _store.FindSeenAsync(_queue, ["k1", "k3"], Now.AddMinutes(1));

        var k1 = Assert.Single(seen);
        Assert.Equal("k1", k1.Key);
        Assert.Equal(new SeenMessage(batch, "h1", Pending: true), k1.Value);
        Assert.Empty(await _store.FindSeenAsync("other-" + _queue, ["k1"], Now.AddMinutes(1)));
    }

    [Fact]
    public async Task ReplaceHandle_PutsTheNewHandleInThePendingBatch_InPlaceOfTheOld()
    {
        await EnqueueAsync(("k1", "h1"), ("k2", "h2"));

        await _store.ReplaceHandleAsync(_queue, "k1", "h1-again");

        Assert.Equal(new HashSet<string> { "h1-again", "h2" }, (await _store.PendingHandlesAsync(_queue)).ToHashSet());
        Assert.Equal("h1-again", (await _store.FindSeenAsync(_queue, ["k1"], Now))["k1"].Handle);
    }

    [Fact]
    public async Task Settle_Acknowledged_KeepsTheKeysAsSettled_Released_ForgetsThem()
    {
        var acked = await EnqueueAsync(("a", "ha"));
        var released = await EnqueueAsync(("r", "hr"));

        Assert.True(await _store.SettleBatchAsync(acked, acknowledged: true));
        Assert.True(await _store.SettleBatchAsync(released, acknowledged: false));

        var seen = await _store.FindSeenAsync(_queue, ["a", "r"], Now.AddMinutes(1));
        Assert.Equal(["a"], seen.Keys);
        Assert.False(seen["a"].Pending);
        await _store.ReplaceHandleAsync(_queue, "a", "ha-again");
        Assert.Empty(await _store.PendingHandlesAsync(_queue));
    }

    [Fact]
    public async Task SettleMany_SettlesEachOnce_ReleasedForgetTheirKeys_AnUnknownOrSettledOneIsNotCounted()
    {
        var first = await EnqueueAsync(("m1", "h1"));
        var second = await EnqueueAsync(("m2", "h2"));
        var third = await EnqueueAsync(("m3", "h3"));
        Assert.True(await _store.SettleBatchAsync(third, acknowledged: true));

        Assert.Equal(2, await _store.SettleBatchesAsync([first, second, third, "no-such-batch"], acknowledged: false));
        Assert.Equal(0, await _store.SettleBatchesAsync([first, second], acknowledged: true));

        Assert.Empty(await _store.PendingHandlesAsync(_queue));
        Assert.Equal(["m3"], (await _store.FindSeenAsync(_queue, ["m1", "m2", "m3"], Now.AddMinutes(1))).Keys);
    }

    [Fact]
    public async Task Keys_AreForgotten_AfterTheWindow()
    {
        await EnqueueAsync(("k", "h"));

        Assert.Single(await _store.FindSeenAsync(_queue, ["k"], Now + QueueDedup.Window - TimeSpan.FromSeconds(1)));
        Assert.Empty(await _store.FindSeenAsync(_queue, ["k"], Now + QueueDedup.Window));
    }
}

public sealed class SqliteQueueDedupTests : QueueDedupComplianceTests
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "longshore-dedup-" + Guid.NewGuid().ToString("N"));
    private SqliteTaskStore? _store;

    protected override async Task<IQueueStore> OpenStoreAsync()
    {
        Directory.CreateDirectory(_folder);
        _store = await SqliteTaskStore.OpenAsync(Path.Combine(_folder, "longshore.db"));
        return _store;
    }

    protected override Task CloseStoreAsync()
    {
        _store?.Dispose();
        Directory.Delete(_folder, recursive: true);
        return Task.CompletedTask;
    }
}

public sealed class PostgresQueueDedupTests : QueueDedupComplianceTests
{
    private readonly string _schema = Infrastructure.TestServices.UniqueName("dedup");
    private Longshore.Storage.Postgres.PostgresStore? _store;

    protected override async Task<IQueueStore> OpenStoreAsync() =>
        _store = await Longshore.Storage.Postgres.PostgresStore.OpenAsync(await Infrastructure.TestServices.CreatePostgresSchemaAsync(_schema));

    protected override async Task CloseStoreAsync()
    {
        if (_store is not null)
            await _store.DisposeAsync();
        await Infrastructure.TestServices.DropPostgresSchemaAsync(_schema);
    }
}

public sealed class RedisQueueDedupTests : QueueDedupComplianceTests
{
    private readonly string _prefix = Infrastructure.TestServices.UniqueName("dedup") + ":";
    private Longshore.Storage.Redis.RedisStore? _store;

    protected override async Task<IQueueStore> OpenStoreAsync() =>
        _store = await Longshore.Storage.Redis.RedisStore.OpenAsync($"{Infrastructure.TestServices.RedisConfiguration},prefix={_prefix}");

    protected override async Task CloseStoreAsync()
    {
        if (_store is not null)
            await _store.DisposeAsync();
        await Infrastructure.TestServices.DropRedisPrefixAsync(_prefix);
    }
}
