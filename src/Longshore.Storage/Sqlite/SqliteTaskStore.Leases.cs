using Longshore.Core.Storage;
using Longshore.Storage.Relational;
using Microsoft.Data.Sqlite;
using static Longshore.Storage.Relational.RunRows;

namespace Longshore.Storage.Sqlite;

/// <summary>
/// The scheduler lease: read and decided inside the single writer's transaction, so every change is atomic. Shared
/// settings live beside the store's own metadata, under a <c>setting:</c> key.
/// </summary>
public sealed partial class SqliteTaskStore : ILeaseStore, ISettingStore
{
    public Task<string?> GetSettingAsync(string key, CancellationToken cancellationToken = default) =>
        RunRows.GetSettingAsync(ReadAsync, '$', key, cancellationToken);

    public async Task SetSettingAsync(string key, string? value, CancellationToken cancellationToken = default)
    {
        var (sql, parameters) = SetSettingSql('$', key, value);
        await WriteAsync((connection, transaction) => ExecuteAsync(connection, transaction, sql, cancellationToken, parameters), cancellationToken);
    }

    public async Task<Lease> TryAcquireLeaseAsync(string holder, TimeSpan duration, DateTimeOffset now, bool takeOver = false, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            var current = await ReadLeaseAsync(connection, transaction, cancellationToken);
            if (Fencing.Decide(current, holder, duration, now, takeOver) is not { } next)
                return current!;
            await ExecuteAsync(connection, transaction, """
                INSERT INTO leases (name, holder, term, expires_at) VALUES ('scheduler', $holder, $term, $expires)
                ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, term = excluded.term, expires_at = excluded.expires_at;
                """, cancellationToken, ("holder", next.Holder), ("term", next.Term), ("expires", next.ExpiresAt.ToUnixTimeMilliseconds()));
            return next;
        }, cancellationToken);

    public async Task<Lease?> GetLeaseAsync(CancellationToken cancellationToken = default)
    {
        Lease? lease = null;
        await ReadAsync("SELECT holder, term, expires_at FROM leases WHERE name = 'scheduler';", reader => lease = ReadLease(reader), cancellationToken);
        return lease;
    }

    public async Task ReleaseLeaseAsync(string holder, long term, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) => await ExecuteAsync(connection, transaction,
            "UPDATE leases SET expires_at = 0 WHERE name = 'scheduler' AND holder = $holder AND term = $term;", cancellationToken,
            ("holder", holder), ("term", term)), cancellationToken);

    private static async Task<Lease?> ReadLeaseAsync(SqliteConnection connection, SqliteTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = CreateCommand(connection, transaction, "SELECT holder, term, expires_at FROM leases WHERE name = 'scheduler';", []);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadLease(reader) : null;
    }

    private static async Task<long?> LeaseTermAsync(SqliteConnection connection, SqliteTransaction transaction) =>
        (long?)await ScalarAsync(connection, transaction, "SELECT term FROM leases WHERE name = 'scheduler';", CancellationToken.None);
}
