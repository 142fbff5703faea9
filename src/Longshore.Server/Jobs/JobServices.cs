using Longshore.Core.Jobs;
using Microsoft.Extensions.Hosting;

namespace Longshore.Server.Jobs;

/// <summary>Runs the job reconciler and the health monitor for the life of the server.</summary>
internal sealed class JobServices(JobReconciler reconciler, JobHealthMonitor monitor) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(reconciler.RunAsync(stoppingToken), monitor.RunAsync(stoppingToken));
}
