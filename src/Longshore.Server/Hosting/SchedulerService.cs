using Longshore.Core.Scheduling;
using Microsoft.Extensions.Hosting;

namespace Longshore.Server.Hosting;

/// <summary>Runs the scheduler loop for the life of the server.</summary>
internal sealed class SchedulerService(Scheduler scheduler) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => scheduler.RunAsync(stoppingToken);
}
