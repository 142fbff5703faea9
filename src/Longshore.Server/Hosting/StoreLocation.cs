using Longshore.Core.Storage;
using Longshore.Storage.Postgres;
using Longshore.Storage.Redis;
using Longshore.Storage.Sqlite;

namespace Longshore.Server.Hosting;

/// <summary>
/// Where the state lives, from <c>--store KIND:VALUE</c>: <c>sqlite:PATH</c> (the embedded default, one instance),
/// <c>postgres:CONNSTRING</c> or <c>redis:CONFIG</c> (shared by several instances).
/// </summary>
public sealed record StoreLocation(string Kind, string Value)
{
    public static readonly string[] Kinds = ["sqlite", "postgres", "redis"];

    /// <summary>The store, or null with the reason naming the setting.</summary>
    public static (StoreLocation? Location, string? Error) Parse(string? text, string dataDir)
    {
        if (string.IsNullOrWhiteSpace(text))
            return (new StoreLocation("sqlite", Path.Combine(dataDir, "longshore.db")), null);
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var kind = colon < 0 ? text : text[..colon];
        var value = colon < 0 ? string.Empty : text[(colon + 1)..];
        // The value may hold a password: never repeat it in an error.
        if (!Kinds.Contains(kind, StringComparer.Ordinal))
            return (null, $"store: must start with one of {string.Join(", ", Kinds.Select(k => k + ":"))} (e.g. postgres:Host=127.0.0.1;Database=longshore), got '{kind}:…'");
        if (value.Length == 0)
            return (null, $"store: {kind}: needs a value after the colon (sqlite:PATH, postgres:CONNSTRING, redis:CONFIG)");
        return (new StoreLocation(kind, value), null);
    }

    /// <summary>Several instances may share the store (and so elect one scheduler); SQLite is one process's file.</summary>
    public bool Shared => Kind != "sqlite";

    /// <summary>
    /// Opens the store. <paramref name="stalledTransactionLimit"/> bounds how long a shared store's transaction may wait on
    /// this instance: one renewal interval, so a frozen leader's locks are gone before its lease can expire.
    /// </summary>
    public async Task<IStateStore> OpenAsync(string sqliteSynchronous, TimeSpan stalledTransactionLimit, CancellationToken cancellationToken)
    {
        try
        {
            switch (Kind)
            {
                case "sqlite":
                    if (Path.GetDirectoryName(Path.GetFullPath(Value)) is { } folder)
                        Directory.CreateDirectory(folder);
                    return await SqliteTaskStore.OpenAsync(Value, sqliteSynchronous, cancellationToken);
                case "postgres":
                    return await PostgresStore.OpenAsync(Value, stalledTransactionLimit, cancellationToken);
                default:
                    return await RedisStore.OpenAsync(Value, cancellationToken);
            }
        }
        catch (Exception e) when (e is not (StoreUnavailableException or OperationCanceledException))
        {
            throw new StoreUnavailableException($"the {Kind} store could not be opened: {e.Message}", e);
        }
    }
}
