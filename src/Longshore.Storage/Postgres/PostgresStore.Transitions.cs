using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Storage.Relational;
using Npgsql;
using static Longshore.Storage.Relational.RunRows;

namespace Longshore.Storage.Postgres;

/// <summary>
/// Transitions are the store's hottest write (each run makes three or four), and runs posted to the API come many at a
/// time, so both are combined (<see cref="WriteCombiner{TItem, TResult}"/>): those waiting at a moment go to the server
/// together, one transaction and one fenced lease check for all. Transitions' compare-and-sets are one
/// <c>UPDATE … FROM unnest(…)</c>, their logs, retries and batch outcomes one more round trip; runs are one
/// <c>INSERT … SELECT FROM unnest(…)</c>. The result of each is its own: a transition whose run is elsewhere changes
/// nothing and answers false, as it would alone.
/// </summary>
public sealed partial class PostgresStore
{
    /// <summary>Transactions of combined writes of one kind in flight at once (of the pool's connections).</summary>
    private const int CombinedWriters = 4;

    private const int CombinedLimit = 256;

    private readonly WriteCombiner<RunTransition, bool> _transitions;
    private readonly WriteCombiner<TaskRun, bool> _inserts;

    /// <summary>The batch's columns are named <c>v_…</c>, so that <see cref="TransitionAssignments"/> reads them beside the run's own.</summary>
    private static readonly string CombinedTransitionSql = $"""
        UPDATE runs SET {TransitionAssignments("v_", "v_terminal")}
        FROM unnest(@ids, @froms, @tos, @ats, @starts, @terminals, @exits, @reasons, @agents, @containers, @retries)
            WITH ORDINALITY AS v(v_id, v_from, v_to, v_at, v_started, v_terminal, v_exit, v_reason, v_agent, v_container, v_retry, v_n)
        WHERE mesos_id = v_id AND state = ANY(string_to_array(v_from, ','))
        RETURNING v_n, message_key;
        """;

    public async Task<bool> TryTransitionAsync(RunTransition transition, CancellationToken cancellationToken = default) =>
        transition.From.Count > 0 && await _transitions.WriteAsync(transition, cancellationToken);

    public async Task InsertAsync(TaskRun run, CancellationToken cancellationToken = default) =>
        await _inserts.WriteAsync(run, cancellationToken);

    private WriteCombiner<RunTransition, bool> TransitionCombiner() =>
        new(
            (term, transitions) => WriteUnderAsync(term, (connection, transaction) => TransitionAllAsync(connection, transaction, transitions), CancellationToken.None),
            transition => transition.MesosId, CombinedWriters, CombinedLimit);

    private WriteCombiner<TaskRun, bool> InsertCombiner() =>
        new(
            (term, runs) => WriteUnderAsync(term, async (connection, transaction) =>
            {
                await InsertRunsAsync(connection, transaction, runs, CancellationToken.None);
                return runs.Select(_ => true).ToArray();
            }, CancellationToken.None),
            run => run.MesosId, CombinedWriters, CombinedLimit);

    private static async Task<bool[]> TransitionAllAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<RunTransition> transitions)
    {
        var moved = new bool[transitions.Count];
        var messageKeys = new string?[transitions.Count];
        await using (var update = Command(connection, transaction, CombinedTransitionSql,
        [
            ("ids", transitions.Select(t => t.MesosId).ToArray()),
            ("froms", transitions.Select(t => string.Join(',', t.From.Select(state => state.ToWire()))).ToArray()),
            ("tos", transitions.Select(t => t.To.ToWire()).ToArray()),
            ("ats", transitions.Select(t => t.At.ToUnixTimeMilliseconds()).ToArray()),
            ("starts", transitions.Select(t => t.StartedAt?.ToUnixTimeMilliseconds()).ToArray()),
            ("terminals", transitions.Select(t => t.To.IsTerminal()).ToArray()),
            ("exits", transitions.Select(t => t.ExitCode).ToArray()),
            ("reasons", transitions.Select(t => t.Reason).ToArray()),
            ("agents", transitions.Select(t => t.Agent).ToArray()),
            ("containers", transitions.Select(t => t.ContainerId).ToArray()),
            ("retries", transitions.Select(t => t.Retry?.MesosId).ToArray()),
        ]))
        await using (var reader = await update.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                var i = (int)reader.GetInt64(0) - 1;
                moved[i] = true;
                messageKeys[i] = reader.IsDBNull(1) ? null : reader.GetString(1);
            }
        }

        // What comes with each transition that moved: its logs, its retry, and (at a chain's end) its queue batch's outcome.
        await using var rest = new NpgsqlBatch(connection, transaction);
        var logged = Enumerable.Range(0, transitions.Count).Where(i => moved[i] && transitions[i].Logs is not null).ToArray();
        if (logged.Length > 0)
        {
            rest.BatchCommands.Add(BatchCommand("""
                INSERT INTO run_logs (mesos_id, stdout, stderr, truncated)
                SELECT * FROM unnest(@ids, @outs, @errs, @truncs)
                ON CONFLICT (mesos_id) DO UPDATE SET stdout = excluded.stdout, stderr = excluded.stderr, truncated = excluded.truncated;
                """,
                ("ids", logged.Select(i => transitions[i].MesosId).ToArray()),
                ("outs", logged.Select(i => Text(transitions[i].Logs!.Stdout)).ToArray()),
                ("errs", logged.Select(i => Text(transitions[i].Logs!.Stderr)).ToArray()),
                ("truncs", logged.Select(i => transitions[i].Logs!.Truncated).ToArray())));
        }

        for (var i = 0; i < transitions.Count; i++)
        {
            if (moved[i] && transitions[i].Retry is { } retry)
                rest.BatchCommands.Add(BatchCommand(InsertRunSql('@'), RunParameters(retry)));
        }

        var settled = Enumerable.Range(0, transitions.Count)
            .Where(i => moved[i] && transitions[i].Retry is null && transitions[i].To.IsTerminal() && messageKeys[i] is not null).ToArray();
        if (settled.Length > 0)
        {
            // The chain ended: a queue batch it carries is ready to settle.
            rest.BatchCommands.Add(BatchCommand("""
                UPDATE queue_batches SET outcome = v_outcome
                FROM unnest(@keys, @outcomes) AS v(v_key, v_outcome)
                WHERE state = 'PENDING' AND message_key = v_key;
                """,
                ("keys", settled.Select(i => messageKeys[i]!).ToArray()),
                ("outcomes", settled.Select(i => transitions[i].To == TaskState.Finished ? "FINISHED" : "FAILED").ToArray())));
        }

        if (rest.BatchCommands.Count > 0)
            await rest.ExecuteNonQueryAsync();
        return moved;
    }

    private static NpgsqlBatchCommand BatchCommand(string sql, params (string Name, object? Value)[] parameters)
    {
#pragma warning disable CA2100 // Only fixed SQL; every value is a parameter.
        var command = new NpgsqlBatchCommand(sql);
#pragma warning restore CA2100
        foreach (var (name, value) in parameters)
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return command;
    }
}
