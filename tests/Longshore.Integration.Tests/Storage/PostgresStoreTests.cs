using Longshore.Core.Storage;
using Longshore.Integration.Tests.Infrastructure;
using Longshore.Storage.Postgres;

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
}
