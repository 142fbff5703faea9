using System.Text.Json;
using Longshore.Core.Storage;
using Microsoft.Data.Sqlite;
using static Longshore.Storage.Relational.RunRows;

namespace Longshore.Storage.Sqlite;

/// <summary>Retention: ended runs deleted a batch at a time, each batch one short write of the single writer.</summary>
public sealed partial class SqliteTaskStore : IRetentionStore
{
    public async Task<int> PruneEndedBeforeAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            var at = cutoff.ToUnixTimeMilliseconds();
            // INDEXED BY: the walk must start at the oldest ended run, never scan the runs it keeps.
            var pruned = await DeleteRunsAsync(connection, transaction, PruneEndedBeforeSql('$', "INDEXED BY runs_ended"), cancellationToken,
                ("$cutoff", at), ("$limit", limit));
            await ExecuteAsync(connection, transaction, PruneExpiredDedupSql('$'), cancellationToken, ("$cutoff", at), ("$limit", limit));
            return pruned;
        }, cancellationToken);

    public async Task<IReadOnlyList<string>> FamiliesOverAsync(int keep, CancellationToken cancellationToken = default)
    {
        var families = new List<string>();
        await ReadAsync(FamiliesOverSql('$'), reader => families.Add(reader.GetString(0)), cancellationToken, ("$keep", keep));
        return families;
    }

    public async Task<int> PruneFamilyAsync(string familyId, int keep, int limit, CancellationToken cancellationToken = default) =>
        await WriteAsync((connection, transaction) => DeleteRunsAsync(connection, transaction, PruneFamilySql('$'), cancellationToken,
            ("$family", familyId), ("$keep", keep), ("$limit", limit)), cancellationToken);

    /// <summary>Runs one of the pruning DELETEs, then removes the logs and settled batches of the runs it deleted.</summary>
    private static async Task<int> DeleteRunsAsync(SqliteConnection connection, SqliteTransaction transaction, string sql, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters)
    {
        var ids = new List<string>();
        var keys = new HashSet<string>(StringComparer.Ordinal);
        await using (var command = CreateCommand(connection, transaction, sql + ";", parameters))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                ids.Add(reader.GetString(0));
                if (!reader.IsDBNull(1))
                    keys.Add(reader.GetString(1));
            }
        }

        if (ids.Count > 0)
        {
            await ExecuteAsync(connection, transaction, PrunedLeftoversSql('$', name => $"SELECT value FROM json_each({name})"), cancellationToken,
                ("$ids", JsonSerializer.Serialize(ids)), ("$keys", JsonSerializer.Serialize(keys)));
        }

        return ids.Count;
    }
}
