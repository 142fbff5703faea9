using Longshore.Core.Queues;
using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;
using Longshore.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>
/// A real SQLite store in a temporary folder, with the scheduler and poll loop built over it as the server builds them,
/// the scheduler launching into an <see cref="InertBackend"/>: for tests of what happens before a run reaches an engine.
/// </summary>
public sealed class LocalStore : IDisposable
{
    private readonly string _folder;

    private LocalStore(string folder, SqliteTaskStore store, TimeProvider time)
    {
        _folder = folder;
        Store = store;
        Time = time;
    }

    public SqliteTaskStore Store { get; }

    public TimeProvider Time { get; }

    public static async Task<LocalStore> OpenAsync(TimeProvider time, string synchronous = "FULL")
    {
        var folder = Directory.CreateTempSubdirectory("longshore-local-").FullName;
        return new LocalStore(folder, await SqliteTaskStore.OpenAsync(Path.Combine(folder, "longshore.db"), synchronous), time);
    }

    public Scheduler NewScheduler(SchedulerOptions? options = null, InertBackend? backend = null) =>
        new(Store, backend ?? new InertBackend(), new RetryPolicy(new RetryOptions(), () => 0.5), options ?? new SchedulerOptions(), Time, Guid.NewGuid,
            new SchedulerMetrics(), NullLogger<Scheduler>.Instance);

    /// <summary>A fresh poll loop, as after a restart of the server, over the same store.</summary>
    public QueuePoller NewPoller(params IQueueSource[] sources) =>
        new(Store, NewScheduler(), sources, Time, Guid.NewGuid, NullLogger<QueuePoller>.Instance);

    public void Dispose()
    {
        Store.Dispose();
        Directory.Delete(_folder, recursive: true);
    }
}
