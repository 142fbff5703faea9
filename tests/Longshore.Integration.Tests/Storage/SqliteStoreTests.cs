using Longshore.Core.Storage;
using Longshore.Storage.Sqlite;

namespace Longshore.Integration.Tests.Storage;

public sealed class SqliteStoreTests : StoreComplianceTests
{
    private readonly string _path = Path.Combine(Directory.CreateTempSubdirectory("longshore-store-").FullName, "longshore.db");

    protected override async Task<IStateStore> OpenStoreAsync() => await SqliteTaskStore.OpenAsync(_path, "NORMAL");

    protected override async Task<IStateStore> OpenSecondClientAsync() => await SqliteTaskStore.OpenAsync(_path, "NORMAL");

    protected override Task DropStoreAsync()
    {
        Directory.Delete(Path.GetDirectoryName(_path)!, recursive: true);
        return Task.CompletedTask;
    }
}
