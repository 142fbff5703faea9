using System.Text;
using System.Text.Json;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Microsoft.Data.Sqlite;
using static Longshore.Storage.Relational.RunRows;

namespace Longshore.Storage.Sqlite;

/// <summary>
/// Transitions are the store's hottest write (each run makes three or four). Those that reach the writer together are
/// applied as one write instead of a savepoint and a statement or three each: their compare-and-sets in one
/// <c>UPDATE … FROM json_each(…)</c>, then the logs, retries and queue-batch outcomes of those that moved. A transition
/// alone is the same write with one row. Each answers as it would alone; should the combined write fail, it is undone
/// and each transition runs on its own, so one bad transition fails alone.
/// </summary>
public sealed partial class SqliteTaskStore
{
    /// <summary>The batch's columns are named <c>v_…</c>, so that <see cref="TransitionAssignments"/> reads them beside the run's own.</summary>
    private static readonly string CombinedTransitionSql = $"""
        UPDATE runs SET {TransitionAssignments("v_", "v_terminal")}
        FROM (SELECT json_extract(value, '$.id') AS v_id, json_extract(value, '$.from') AS v_from, json_extract(value, '$.to') AS v_to,
                json_extract(value, '$.at') AS v_at, json_extract(value, '$.started') AS v_started, json_extract(value, '$.terminal') AS v_terminal, json_extract(value, '$.exit') AS v_exit,
                json_extract(value, '$.reason') AS v_reason, json_extract(value, '$.agent') AS v_agent,
                json_extract(value, '$.container') AS v_container, json_extract(value, '$.retry') AS v_retry
            FROM json_each($rows))
        WHERE mesos_id = v_id AND instr(v_from, ',' || state || ',') > 0
        RETURNING mesos_id, message_key;
        """;

    /// <summary>
    /// The transitions from <paramref name="first"/> on, not yet <paramref name="done"/>, that can share one statement with
    /// it: the same term, each run once (a second transition of a run is applied after).
    /// </summary>
    private static List<int> CombinableWith(List<PendingWrite> batch, int first, bool[] done)
    {
        var runs = new HashSet<string>(StringComparer.Ordinal);
        var group = new List<int>();
        for (var j = first; j < batch.Count; j++)
        {
            if (!done[j] && batch[j].Transition is { } transition && batch[j].Term == batch[first].Term && runs.Add(transition.MesosId))
                group.Add(j);
        }

        return group;
    }

    /// <summary>
    /// Applies the <paramref name="group"/>'s transitions together and records each one's outcome; false (with nothing
    /// changed) when the combined write failed and each must run alone.
    /// </summary>
    private static async Task<bool> TryTransitionAllAsync(SqliteConnection connection, SqliteTransaction transaction, List<PendingWrite> batch, List<int> group,
        long? leaseTerm, (object? Result, Exception? Error)[] outcomes)
    {
        try
        {
            Fencing.Check(batch[group[0]].Term, leaseTerm);
        }
        catch (StaleTermException stale)
        {
            foreach (var j in group)
                outcomes[j] = (null, stale);
            return true;
        }

        await ExecuteAsync(connection, transaction, "SAVEPOINT combined;", CancellationToken.None);
        try
        {
            var transitions = group.Select(j => batch[j].Transition!).ToList();
            var moved = await TransitionAllAsync(connection, transaction, transitions);
            for (var k = 0; k < group.Count; k++)
                outcomes[group[k]] = (moved[k], null);
            await ExecuteAsync(connection, transaction, "RELEASE combined;", CancellationToken.None);
            return true;
        }
        catch (Exception)
        {
            await ExecuteAsync(connection, transaction, "ROLLBACK TO combined; RELEASE combined;", CancellationToken.None);
            return false;
        }
    }

    private static async Task<bool[]> TransitionAllAsync(SqliteConnection connection, SqliteTransaction transaction, List<RunTransition> transitions)
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var k = 0; k < transitions.Count; k++)
            index[transitions[k].MesosId] = k;
        var moved = new bool[transitions.Count];
        var messageKeys = new string?[transitions.Count];
        var rows = JsonRows(transitions, (json, t) =>
        {
            json.WriteString("id", t.MesosId);
            json.WriteString("from", "," + string.Join(',', t.From.Select(state => state.ToWire())) + ",");
            json.WriteString("to", t.To.ToWire());
            json.WriteNumber("at", t.At.ToUnixTimeMilliseconds());
            WriteNullable(json, "started", t.StartedAt?.ToUnixTimeMilliseconds());
            json.WriteBoolean("terminal", t.To.IsTerminal());
            WriteNullable(json, "exit", t.ExitCode);
            json.WriteString("reason", t.Reason);
            json.WriteString("agent", t.Agent);
            json.WriteString("container", t.ContainerId);
            json.WriteString("retry", t.Retry?.MesosId);
        });
        await using (var update = CreateCommand(connection, transaction, CombinedTransitionSql, [("$rows", rows)]))
        await using (var reader = await update.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                var k = index[reader.GetString(0)];
                moved[k] = true;
                messageKeys[k] = reader.IsDBNull(1) ? null : reader.GetString(1);
            }
        }

        // What comes with each transition that moved: its logs, its retry, and (at a chain's end) its queue batch's outcome.
        // Logs are bound as they are, one prepared statement for all: SQLite's JSON functions would end them at a NUL.
        var logged = Enumerable.Range(0, transitions.Count).Where(k => moved[k] && transitions[k].Logs is not null).Select(k => transitions[k]).ToList();
        if (logged.Count > 0)
        {
            await using var insertLogs = CreateCommand(connection, transaction,
                "INSERT OR REPLACE INTO run_logs (mesos_id, stdout, stderr, truncated) VALUES ($id, $out, $err, $trunc);",
                [("$id", null), ("$out", null), ("$err", null), ("$trunc", null)]);
            foreach (var transition in logged)
            {
                insertLogs.Parameters["$id"].Value = transition.MesosId;
                insertLogs.Parameters["$out"].Value = transition.Logs!.Stdout;
                insertLogs.Parameters["$err"].Value = transition.Logs.Stderr;
                insertLogs.Parameters["$trunc"].Value = transition.Logs.Truncated;
                await insertLogs.ExecuteNonQueryAsync();
            }
        }

        for (var k = 0; k < transitions.Count; k++)
        {
            if (moved[k] && transitions[k].Retry is { } retry)
                await InsertRunAsync(connection, transaction, retry, CancellationToken.None);
        }

        var settled = Enumerable.Range(0, transitions.Count)
            .Where(k => moved[k] && transitions[k].Retry is null && transitions[k].To.IsTerminal() && messageKeys[k] is not null).ToList();
        if (settled.Count > 0)
        {
            // The chain ended: a queue batch it carries is ready to settle. (`+state`: each batch is found by its key; the
            // index of pending batches would have SQLite walk all of them for each one.)
            await ExecuteAsync(connection, transaction, """
                UPDATE queue_batches SET outcome = v_outcome
                FROM (SELECT json_extract(value, '$.key') AS v_key, json_extract(value, '$.outcome') AS v_outcome FROM json_each($rows))
                WHERE message_key = v_key AND +state = 'PENDING';
                """, CancellationToken.None, ("$rows", JsonRows(settled, (json, k) =>
                {
                    json.WriteString("key", messageKeys[k]);
                    json.WriteString("outcome", transitions[k].To == TaskState.Finished ? "FINISHED" : "FAILED");
                })));
        }

        return moved;
    }

    /// <summary>A JSON array of one object per item, for <c>json_each</c>.</summary>
    private static string JsonRows<T>(IEnumerable<T> items, Action<Utf8JsonWriter, T> write)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            foreach (var item in items)
            {
                json.WriteStartObject();
                write(json, item);
                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    private static void WriteNullable(Utf8JsonWriter json, string name, long? value)
    {
        if (value is { } number)
            json.WriteNumber(name, number);
        else
            json.WriteNull(name);
    }
}
