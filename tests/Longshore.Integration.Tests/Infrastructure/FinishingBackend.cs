using System.Threading.Channels;
using Longshore.Core.Execution;
using Longshore.Core.Tasks;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>An engine that runs nothing: every launched run is reported running, then finished, at once.</summary>
public sealed class FinishingBackend(TimeProvider time) : IExecutionBackend
{
    private readonly Channel<StatusUpdate> _updates = Channel.CreateUnbounded<StatusUpdate>();

    public string Name => "finishing";

    public ChannelReader<StatusUpdate> Updates => _updates.Reader;

    public Task CheckAvailableAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

    public Task<LaunchResult> LaunchAsync(TaskRun run, CancellationToken cancellationToken = default)
    {
        _updates.Writer.TryWrite(new StatusUpdate(run.MesosId, TaskState.Running, time.GetUtcNow()) { Agent = "finishing" });
        _updates.Writer.TryWrite(new StatusUpdate(run.MesosId, TaskState.Finished, time.GetUtcNow()) { ExitCode = 0, Logs = new TaskLogs("done\n", string.Empty, false) });
        return Task.FromResult(new LaunchResult(run.MesosId, "finishing"));
    }

    public Task<bool> KillAsync(TaskRun run, TimeSpan grace, CancellationToken cancellationToken = default) => Task.FromResult(false);

    public Task<ReconcileResult> ReconcileAsync(IReadOnlyCollection<TaskRun> active, CancellationToken cancellationToken = default) =>
        Task.FromResult(new ReconcileResult([], 0));

    public Task ReleaseAsync(TaskRun run, CancellationToken cancellationToken = default) => Task.CompletedTask;
}
