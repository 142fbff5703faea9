using Longshore.Core.Execution;
using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Longshore.Server.Api;

/// <summary><c>GET /healthz</c>: 200 when the store and engine answer, 503 (same body) when not.</summary>
public static class HealthApi
{
    public static void MapHealthApi(this IEndpointRouteBuilder routes, Uri engineEndpoint)
    {
        routes.MapGet("/healthz", async (IExecutionBackend backend, IStateStore store, Scheduler scheduler, LeaderElection election, StoreClock clock,
            CancellationToken cancellationToken) =>
        {
            string? engineError = null;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                timeout.CancelAfter(TimeSpan.FromSeconds(3));
                try
                {
                    await backend.CheckAvailableAsync(timeout.Token);
                }
                catch (Exception e) when (e is EngineUnavailableException or OperationCanceledException)
                {
                    engineError = e.Message;
                }
            }

            var healthy = engineError is null;
            var body = new
            {
                Status = healthy ? "ok" : "degraded",
                // Every instance answers; only the leader schedules. A follower reports the term it last saw.
                Leader = election.IsLeader,
                Term = election.Term ?? election.LastSeen?.Term ?? 0,
                Instance = election.Holder,
                LeaderInstance = election.LastSeen?.Holder,
                Engine = new { backend.Name, Endpoint = engineEndpoint.ToString(), Reachable = healthy, Error = engineError },
                Store = new { store.Description, store.InstanceId },
                // How far the store server's clock is from this machine's; Longshore keeps time by the store server's.
                Clock = new { OffsetSeconds = clock.Offset.TotalSeconds, UncertaintySeconds = clock.Uncertainty.TotalSeconds },
                Scheduler = new { Running = scheduler.Leading, scheduler.Reconciled, LastPassAt = scheduler.LastPassAt },
            };
            return Results.Json(body, statusCode: healthy ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
        }).WithTags("health");
    }
}
