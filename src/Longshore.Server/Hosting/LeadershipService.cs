using Longshore.Core.Jobs;
using Longshore.Core.Queues;
using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;
using Microsoft.Extensions.Hosting;

namespace Longshore.Server.Hosting;

/// <summary>
/// Competes for the scheduler lease for the life of the server; while this instance leads, runs the leader-only loops
/// (scheduler, queue polling, job reconciliation and health checks, retention) under the lease's term. Every instance serves the API.
/// </summary>
internal sealed class LeadershipService(LeaderElection election, Scheduler scheduler, QueuePoller poller, JobReconciler reconciler, JobHealthMonitor monitor,
    RunRetention retention) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        election.RunAsync(leading => LeaderElection.UntilAnyEndsAsync(leading, scheduler.RunAsync, poller.RunAsync, reconciler.RunAsync, monitor.RunAsync,
            retention.RunAsync), stoppingToken);
}
