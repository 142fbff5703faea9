using System.Threading.Channels;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Npgsql;
using static Longshore.Storage.Relational.RunRows;

namespace Longshore.Storage.Postgres;

/// <summary>
/// Transitions are the store's hottest write (each run makes three or four), so they are combined: the transitions waiting
/// at a moment go to the server together, one transaction and one fenced lease check for all, their compare-and-sets
/// in one <c>UPDATE … FROM unnest(…)</c>, logs, retries and batch outcomes in one more round trip. A few writers take
/// turns, so a lone transition is written at once and a busy moment's share one commit. The result of each is its
/// own: a transition whose run is elsewhere changes nothing and answers false, as it would alone.
/// </summary>
public sealed partial class PostgresStore
{
    private const int TransitionBatchLimit = 256;

    /// <summary>Transactions of combined transitions in flight at once (of the pool's connections).</summary>
    private const int TransitionWriters = 4;

    private readonly Channel<PendingTransition> _transitions = Channel.CreateUnbounded<PendingTransition>();
    private Task[] _transitionWriters = [];

    /// <summary>The batch's columns are named <c>v_…</c>, so that <see cref="TransitionAssignments"/> reads them beside the run's own.</summary>
    private static readonly string CombinedTransitionSql = $"""
        UPDATE runs SET {TransitionAssignments("v_", "v_terminal")}
        FROM unnest(@ids, @froms, @tos, @ats, @terminals, @exits, @reasons, @agents, @containers, @retries)
            WITH ORDINALITY AS v(v_id, v_from, v_to, v_at, v_terminal, v_exit, v_reason, v_agent, v_container, v_retry, v_n)
        WHERE mesos_id = v_id AND state = ANY(string_to_array(v_from, ','))
        RETURNING v_n, message_key;
        """;

    public async Task<bool> TryTransitionAsync(RunTransition transition, CancellationToken cancellationToken = default)
    {
        if (transition.From.Count == 0)
            return false;
        var pending = new PendingTransition(transition, Fencing.CurrentTerm);
        ObjectDisposedException.ThrowIf(!_transitions.Writer.TryWrite(pending), this);
        // Like any write whose caller stops waiting, one cut off here may still commit: compare-and-set makes that safe.
        return await pending.Done.Task.WaitAsync(cancellationToken);
    }

    private void StartTransitionWriters() =>
        _transitionWriters = Enumerable.Range(0, TransitionWriters).Select(_ => Task.Run(TransitionWriterAsync, CancellationToken.None)).ToArray();

    private async Task StopTransitionWritersAsync()
    {
        _transitions.Writer.TryComplete();
        await Task.WhenAll(_transitionWriters).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task TransitionWriterAsync()
    {
        var batch = new List<PendingTransition>(TransitionBatchLimit);
        var later = new List<PendingTransition>();
        var runs = new HashSet<string>(StringComparer.Ordinal);
        while (await _transitions.Reader.WaitToReadAsync())
        {
            batch.Clear();
            later.Clear();
            runs.Clear();
            while (batch.Count < TransitionBatchLimit && _transitions.Reader.TryRead(out var pending))
            {
                // One statement moves a run once, and one lease check speaks for one term: a second transition of the same
                // run, or one under another term, is written after this batch, on its own.
                if ((batch.Count == 0 || pending.Term == batch[0].Term) && runs.Add(pending.Transition.MesosId))
                    batch.Add(pending);
                else
                    later.Add(pending);
            }

            await ApplyTransitionsAsync(batch);
            foreach (var pending in later)
                await ApplyTransitionsAsync([pending]);
        }
    }

    private async Task ApplyTransitionsAsync(IReadOnlyList<PendingTransition> batch)
    {
        if (batch.Count == 0)
            return;
        try
        {
            var moved = await WriteUnderAsync(batch[0].Term, (connection, transaction) => TransitionAllAsync(connection, transaction, batch), CancellationToken.None);
            for (var i = 0; i < batch.Count; i++)
                batch[i].Done.TrySetResult(moved[i]);
        }
        catch (StaleTermException e)
        {
            foreach (var pending in batch)
                pending.Done.TrySetException(e);
        }
        catch (Exception) when (batch.Count > 1)
        {
            // One transition the server refuses (a retry whose id is taken) must not fail the others: each on its own.
            foreach (var pending in batch)
                await ApplyTransitionsAsync([pending]);
        }
        catch (Exception e)
        {
            batch[0].Done.TrySetException(e);
        }
    }

    private static async Task<bool[]> TransitionAllAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<PendingTransition> batch)
    {
        var transitions = batch.Select(pending => pending.Transition).ToArray();
        var moved = new bool[transitions.Length];
        var messageKeys = new string?[transitions.Length];
        await using (var update = Command(connection, transaction, CombinedTransitionSql,
        [
            ("ids", transitions.Select(t => t.MesosId).ToArray()),
            ("froms", transitions.Select(t => string.Join(',', t.From.Select(state => state.ToWire()))).ToArray()),
            ("tos", transitions.Select(t => t.To.ToWire()).ToArray()),
            ("ats", transitions.Select(t => t.At.ToUnixTimeMilliseconds()).ToArray()),
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
        var logged = Enumerable.Range(0, transitions.Length).Where(i => moved[i] && transitions[i].Logs is not null).ToArray();
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

        for (var i = 0; i < transitions.Length; i++)
        {
            if (moved[i] && transitions[i].Retry is { } retry)
                rest.BatchCommands.Add(BatchCommand(InsertRunSql('@'), RunParameters(retry)));
        }

        var settled = Enumerable.Range(0, transitions.Length)
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

    private sealed record PendingTransition(RunTransition Transition, long? Term)
    {
        public TaskCompletionSource<bool> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
