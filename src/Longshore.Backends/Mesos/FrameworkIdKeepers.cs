using Longshore.Core.Storage;

namespace Longshore.Backends.Mesos;

/// <summary>
/// Where the framework id the master gave is kept, so that a restart, or the next leader, subscribes as the same
/// framework and finds its tasks instead of registering a new framework beside them.
/// </summary>
public interface IFrameworkIdKeeper
{
    Task<string?> LoadAsync(CancellationToken cancellationToken);

    /// <summary>Keeps <paramref name="id"/>; null forgets it (the master removed the framework).</summary>
    Task SaveAsync(string? id, CancellationToken cancellationToken);
}

/// <summary>A file next to a single instance's store; no file means the id lives only in memory.</summary>
public sealed class FileFrameworkIdKeeper(string? path) : IFrameworkIdKeeper
{
    public async Task<string?> LoadAsync(CancellationToken cancellationToken)
    {
        if (path is null || !File.Exists(path))
            return null;
        var id = (await File.ReadAllTextAsync(path, cancellationToken)).Trim();
        return id.Length == 0 ? null : id;
    }

    public async Task SaveAsync(string? id, CancellationToken cancellationToken)
    {
        if (path is null)
            return;
        if (id is null)
        {
            File.Delete(path);
            return;
        }

        var temporary = path + ".tmp";
        await File.WriteAllTextAsync(temporary, id, cancellationToken);
        File.Move(temporary, path, overwrite: true);
    }
}

/// <summary>The shared store, for several instances: every leader subscribes as the one framework.</summary>
public sealed class StoredFrameworkIdKeeper(ISettingStore store) : IFrameworkIdKeeper
{
    public const string Key = "mesos.framework_id";

    public Task<string?> LoadAsync(CancellationToken cancellationToken) => store.GetSettingAsync(Key, cancellationToken);

    public Task SaveAsync(string? id, CancellationToken cancellationToken) => store.SetSettingAsync(Key, id, cancellationToken);
}
