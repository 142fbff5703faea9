using Longshore.Core.Queues;
using Microsoft.Extensions.Hosting;

namespace Longshore.Server.Hosting;

/// <summary>Runs the queue poll loop for the life of the server.</summary>
internal sealed class QueueService(QueuePoller poller) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => poller.RunAsync(stoppingToken);
}
