using Longshore.Core.Queues;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;
using Longshore.Storage.Redis;
using StackExchange.Redis;

namespace Longshore.Integration.Tests.Storage;

/// <summary>The compliance suite on the real Redis, under a key prefix of its own per test.</summary>
public sealed class RedisStoreTests : StoreComplianceTests
{
    private readonly string _configuration = $"{TestServices.RedisConfiguration},prefix={TestServices.UniqueName("store")}:";

    protected override async Task<IStateStore> OpenStoreAsync() => await RedisStore.OpenAsync(_configuration);

    /// <summary>A retry is written with its end in one MULTI, without a condition on its (fresh, random) id.</summary>
    protected override bool RefusesATakenRetryId => false;

    protected override async Task<IStateStore> OpenSecondClientAsync() => await RedisStore.OpenAsync(_configuration);

    protected override Task DropStoreAsync() => TestServices.DropRedisPrefixAsync(RedisStore.ParseConfiguration(_configuration).Prefix);

    [Fact]
    public async Task DedupKeys_RecordedByAnInstanceWhoseClockIsDaysBehind_LiveInRedisForTheWholeWindow()
    {
        // An instance two days behind Redis's clock: an absolute expiry computed from its clock would be in Redis's past.
        var behind = TimeProvider.System.GetUtcNow() - TimeSpan.FromDays(2);
        var definition = new TaskDefinition { Id = "q", Cmd = "true", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } };
        var run = TaskRun.CreateFirst(definition, Guid.NewGuid(), behind) with { QueueId = "q", MessageKey = "batch-1" };

        await Store.EnqueueAsync("q", [new QueueBatch(run, ["h1"]) { DedupKeys = [new DedupEntry("k1", "h1")] }], new Dictionary<string, string>());

        Assert.Equal("batch-1", (await Store.FindSeenAsync("q", ["k1"], behind.AddMinutes(1)))["k1"].MessageKey);
        await using var redis = await ConnectionMultiplexer.ConnectAsync(TestServices.RedisConfiguration);
        var ttl = await redis.GetDatabase().KeyTimeToLiveAsync($"{RedisStore.ParseConfiguration(_configuration).Prefix}dedup:q:k1");
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, QueueDedup.Window - TimeSpan.FromMinutes(1), QueueDedup.Window + TimeSpan.FromHours(2));
    }

    [Fact]
    public void Description_ConfigurationWithPassword_HidesIt()
    {
        Assert.DoesNotContain("longshore_secret", RedisStore.Redact("127.0.0.1:6379,password=longshore_secret,prefix=x:"), StringComparison.Ordinal);
        Assert.StartsWith("redis:", Store.Description, StringComparison.Ordinal);
    }
}
