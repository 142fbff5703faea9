using Longshore.Core.Storage;
using Longshore.Integration.Tests.Infrastructure;
using Longshore.Storage.Redis;

namespace Longshore.Integration.Tests.Storage;

/// <summary>The compliance suite on the real Redis, under a key prefix of its own per test.</summary>
public sealed class RedisStoreTests : StoreComplianceTests
{
    private readonly string _configuration = $"{TestServices.RedisConfiguration},prefix={TestServices.UniqueName("store")}:";

    protected override async Task<IStateStore> OpenStoreAsync() => await RedisStore.OpenAsync(_configuration);

    protected override async Task<IStateStore> OpenSecondClientAsync() => await RedisStore.OpenAsync(_configuration);

    protected override Task DropStoreAsync() => TestServices.DropRedisPrefixAsync(RedisStore.ParseConfiguration(_configuration).Prefix);

    [Fact]
    public void Description_ConfigurationWithPassword_HidesIt()
    {
        Assert.DoesNotContain("longshore_secret", RedisStore.Redact("127.0.0.1:6379,password=longshore_secret,prefix=x:"), StringComparison.Ordinal);
        Assert.StartsWith("redis:", Store.Description, StringComparison.Ordinal);
    }
}
