using System.Threading.Channels;
using Longshore.Core.Execution;
using Longshore.Core.Tasks;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>
/// An engine that accepts launches and never reports: for tests of what happens before a run reaches an engine.
/// <paramref name="reconcile"/> answers its reconciliations (by default: nothing gone, nothing removed), each after
/// <paramref name="listing"/> completes (an engine's listing that takes its time).
/// </summary>
public sealed class InertBackend(Func<ReconcileResult>? reconcile = null, Func<Task>? listing = null) : IExecutionBackend
{
    private readonly Channel<StatusUpdate> _updates = Channel.CreateUnbounded<StatusUpdate>();

    public string Name => "inert";

    public ChannelReader<StatusUpdate> Updates => _updates.Reader;

    public Task CheckAvailableAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

    public Task<LaunchResult> LaunchAsync(TaskRun run, CancellationToken cancellationToken = default) => Task.FromResult(new LaunchResult(run.MesosId, "inert"));

    public Task<bool> KillAsync(TaskRun run, TimeSpan grace, CancellationToken cancellationToken = default) => Task.FromResult(false);

    public async Task<ReconcileResult> ReconcileAsync(IReadOnlyCollection<TaskRun> active, CancellationToken cancellationToken = default)
    {
        if (listing is not null)
            await listing().WaitAsync(cancellationToken);
        return reconcile?.Invoke() ?? new ReconcileResult([], 0);
    }

    public Task ReleaseAsync(TaskRun run, CancellationToken cancellationToken = default) => Task.CompletedTask;
}
