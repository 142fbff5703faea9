using System.Text.Json;
using Longshore.Core.Storage;
using Npgsql;
using static Longshore.Storage.Relational.RunRows;

namespace Longshore.Storage.Postgres;

/// <summary>Retention: ended runs deleted a batch at a time, each batch one short transaction.</summary>
public sealed partial class PostgresStore : IRetentionStore
{
    public async Task<int> PruneEndedBeforeAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            var at = cutoff.ToUnixTimeMilliseconds();
            var pruned = await DeleteRunsAsync(connection, transaction, PruneEndedBeforeSql('@', string.Empty), [("cutoff", at), ("limit", limit)], cancellationToken);
            await Command(connection, transaction, PruneExpiredDedupSql('@'), [("cutoff", at), ("limit", limit)]).ExecuteNonQueryAsync(cancellationToken);
            return pruned;
        }, cancellationToken);

    public async Task<IReadOnlyList<string>> FamiliesOverAsync(int keep, CancellationToken cancellationToken = default)
    {
        var families = new List<string>();
        await ReadAsync(FamiliesOverSql('@'), reader => families.Add(reader.GetString(0)), cancellationToken, ("keep", keep));
        return families;
    }

    public async Task<int> PruneFamilyAsync(string familyId, int keep, int limit, CancellationToken cancellationToken = default) =>
        await WriteAsync((connection, transaction) => DeleteRunsAsync(connection, transaction, PruneFamilySql('@'),
            [("family", familyId), ("keep", keep), ("limit", limit)], cancellationToken), cancellationToken);

    /// <summary>Runs one of the pruning DELETEs, then removes the logs and settled batches of the runs it deleted.</summary>
    private static async Task<int> DeleteRunsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, (string Name, object? Value)[] parameters,
        CancellationToken cancellationToken)
    {
        var ids = new List<string>();
        var keys = new HashSet<string>(StringComparer.Ordinal);
        await using (var reader = await Command(connection, transaction, sql, parameters).ExecuteReaderAsync(cancellationToken))
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
            await Command(connection, transaction, PrunedLeftoversSql('@', name => $"SELECT jsonb_array_elements_text(CAST({name} AS jsonb))"),
                [("ids", JsonSerializer.Serialize(ids)), ("keys", JsonSerializer.Serialize(keys))]).ExecuteNonQueryAsync(cancellationToken);
        }

        return ids.Count;
    }
}
