using System.Threading.Channels;
using Longshore.Core.Execution;
using Longshore.Core.Tasks;

namespace Longshore.Bench;

/// <summary>An engine that runs nothing: every launched run is reported running, then finished at once, so a benchmark measures the control plane alone.</summary>
internal sealed class NoopBackend(TimeProvider time) : IExecutionBackend
{
    private readonly Channel<StatusUpdate> _updates = Channel.CreateUnbounded<StatusUpdate>();

    public string Name => "noop";

    public ChannelReader<StatusUpdate> Updates => _updates.Reader;

    public Task CheckAvailableAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

    public Task<LaunchResult> LaunchAsync(TaskRun run, CancellationToken cancellationToken = default)
    {
        var now = time.GetUtcNow();
        _updates.Writer.TryWrite(new StatusUpdate(run.MesosId, TaskState.Running, now) { Agent = "noop" });
        _updates.Writer.TryWrite(new StatusUpdate(run.MesosId, TaskState.Finished, now) { ExitCode = 0, Logs = new TaskLogs(string.Empty, string.Empty, false) });
        return Task.FromResult(new LaunchResult(run.MesosId, "noop"));
    }

    public Task<bool> KillAsync(TaskRun run, TimeSpan grace, CancellationToken cancellationToken = default) => Task.FromResult(false);

    public Task<ReconcileResult> ReconcileAsync(IReadOnlyCollection<TaskRun> active, CancellationToken cancellationToken = default) =>
        Task.FromResult(new ReconcileResult([], 0));

    public Task ReleaseAsync(TaskRun run, CancellationToken cancellationToken = default) => Task.CompletedTask;
}
