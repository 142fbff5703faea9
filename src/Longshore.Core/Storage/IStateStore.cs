using Longshore.Core.Jobs;
using Longshore.Core.Queues;

namespace Longshore.Core.Storage;

/// <summary>
/// The whole store contract behind one facade: runs, jobs, queues, the scheduler lease, shared settings and retention. Implementations (SQLite,
/// PostgreSQL, Redis) pass the same compliance suite.
/// </summary>
public interface IStateStore : ITaskStore, IJobStore, IQueueStore, ILeaseStore, ISettingStore, IRetentionStore, IServerClock, IAsyncDisposable
{
    /// <summary>Kind and location for logs and <c>/healthz</c>, never with a secret: <c>sqlite:/path</c>, <c>postgres:Host=…;Database=…</c>.</summary>
    string Description { get; }
}

/// <summary>The store could not be reached or opened at start; the message never holds a secret of the connection string.</summary>
public sealed class StoreUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
