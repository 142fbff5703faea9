using Longshore.Core.Jobs;
using Longshore.Core.Tasks;
using static Longshore.Storage.Relational.RunRows;

namespace Longshore.Storage.Sqlite;

/// <summary>Replicated jobs, in the same database as their runs so a replica and its predecessor link commit together.</summary>
public sealed partial class SqliteTaskStore : IJobStore
{
    private static readonly string TerminalStates = InList(TaskStates.Terminal);

    public async Task<bool> CreateJobAsync(Job job, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            var changed = await ExecuteAsync(connection, transaction, """
                INSERT INTO jobs (id, definition, state, generation, version, created_at, updated_at)
                VALUES ($id, $definition, $state, $generation, 1, $at, $at)
                ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, state = excluded.state,
                    generation = jobs.generation + 1, version = jobs.version + 1, created_at = excluded.created_at, updated_at = excluded.updated_at
                WHERE jobs.state = 'STOPPED';
                """, cancellationToken, JobParameters(job));
            return changed > 0;
        }, cancellationToken);

    public async Task<Job?> GetJobAsync(string id, CancellationToken cancellationToken = default)
    {
        var jobs = await QueryJobsAsync("SELECT * FROM jobs WHERE id = $id;", cancellationToken, ("$id", id));
        return jobs.Count == 0 ? null : jobs[0];
    }

    public Task<IReadOnlyList<Job>> ListJobsAsync(CancellationToken cancellationToken = default) =>
        QueryJobsAsync("SELECT * FROM jobs ORDER BY created_at, id;", cancellationToken);

    public async Task<bool> TryUpdateJobAsync(Job job, long expectedVersion, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            var changed = await ExecuteAsync(connection, transaction, """
                UPDATE jobs SET definition = $definition, state = $state, generation = $generation, version = version + 1, updated_at = $at
                WHERE id = $id AND version = $expected;
                """, cancellationToken, [.. JobParameters(job), ("$expected", expectedVersion)]);
            return changed > 0;
        }, cancellationToken);

    public async Task<IReadOnlyList<TaskRun>> ListJobRunsAsync(string jobId, int endedLimit, CancellationToken cancellationToken = default)
    {
        var (activeSql, endedSql) = JobRunsSql('$', "*");
        var active = await QueryRunsAsync(activeSql, cancellationToken, ("$job", jobId));
        var ended = await QueryRunsAsync(endedSql, cancellationToken, ("$job", jobId), ("$limit", endedLimit));
        return [.. active, .. ended];
    }

    public async Task<bool> InsertReplicaAsync(TaskRun run, string? replaces, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            if (replaces is not null)
            {
                var linked = await ExecuteAsync(connection, transaction,
                    $"UPDATE runs SET retried_as = $new WHERE mesos_id = $old AND retried_as IS NULL AND state IN ({TerminalStates});",
                    cancellationToken, ("$new", run.MesosId), ("$old", replaces));
                if (linked == 0)
                    return false;
            }

            await InsertRunAsync(connection, transaction, run, cancellationToken);
            return true;
        }, cancellationToken);

    private async Task<IReadOnlyList<Job>> QueryJobsAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        var jobs = new List<Job>();
        await ReadAsync(sql, reader => jobs.Add(ReadJob(reader)), cancellationToken, parameters);
        return jobs;
    }
}
