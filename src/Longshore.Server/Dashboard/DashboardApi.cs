using System.Reflection;
using System.Security.Cryptography;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Longshore.Server.Dashboard;

/// <summary>
/// The web dashboard: a page and its script and style, embedded in this assembly (no CDN, no separate web server),
/// plus the two routes only it needs: a summary for the overview and a server-sent event stream for live updates.
/// </summary>
public static class DashboardApi
{
    private static readonly Dictionary<string, (string ContentType, byte[] Body, string ETag)> Assets = LoadAssets();

    public static void MapDashboard(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/", (HttpContext context) => Asset(context, "index.html")).ExcludeFromDescription();
        routes.MapGet("/dashboard/{name}", (string name, HttpContext context) => Asset(context, name)).ExcludeFromDescription();
        routes.MapGet("/api/summary", SummaryAsync).WithTags("dashboard").WithSummary("Runs by state and launches/ends per minute over the last hour");
        routes.MapGet("/api/events", EventsAsync).WithTags("dashboard").WithSummary("Server-sent events: 'changed' whenever any run changes");
    }

    private static IResult Asset(HttpContext context, string name)
    {
        if (!Assets.TryGetValue(name, out var asset))
            return Results.Json(new { error = $"no dashboard file '{name}'" }, statusCode: StatusCodes.Status404NotFound);
        if (context.Request.Headers.IfNoneMatch == asset.ETag)
            return Results.StatusCode(StatusCodes.Status304NotModified);
        context.Response.Headers.ETag = asset.ETag;
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers.XContentTypeOptions = "nosniff";
        context.Response.Headers.ContentSecurityPolicy = "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:";
        return Results.Bytes(asset.Body, asset.ContentType);
    }

    private static async Task<IResult> SummaryAsync(ITaskStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        var counts = await store.CountByStateAsync(cancellationToken);
        var activity = await store.ActivityAsync(time.GetUtcNow().AddHours(-1), cancellationToken);
        return Results.Json(new
        {
            Counts = TaskStates.WireNames.ToDictionary(name => name, name => counts.GetValueOrDefault(TaskStates.Parse(name))),
            Activity = activity,
        });
    }

    /// <summary>Sends <c>changed</c> when the store's change mark moves (checked every half second), and a comment every 15 s to keep proxies open.</summary>
    private static async Task EventsAsync(HttpContext context, ITaskStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        long last = -1;
        var quiet = 0;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var mark = await store.ChangeMarkAsync(cancellationToken);
                if (mark != last)
                {
                    last = mark;
                    quiet = 0;
                    await context.Response.WriteAsync($"event: changed\ndata: {mark}\n\n", cancellationToken);
                    await context.Response.Body.FlushAsync(cancellationToken);
                }
                else if (++quiet % 30 == 0)
                {
                    await context.Response.WriteAsync(": keep-alive\n\n", cancellationToken);
                    await context.Response.Body.FlushAsync(cancellationToken);
                }

                await Task.Delay(TimeSpan.FromMilliseconds(500), time, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
            // The browser went away.
        }
    }

    private static Dictionary<string, (string, byte[], string)> LoadAssets()
    {
        var assembly = typeof(DashboardApi).Assembly;
        const string prefix = "Longshore.Server.Dashboard.assets.";
        var assets = new Dictionary<string, (string, byte[], string)>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            var name = resource[prefix.Length..];
            var body = buffer.ToArray();
            var type = Path.GetExtension(name) switch
            {
                ".html" => "text/html; charset=utf-8",
                ".js" => "text/javascript; charset=utf-8",
                ".css" => "text/css; charset=utf-8",
                ".svg" => "image/svg+xml",
                _ => "application/octet-stream",
            };
            assets[name] = (type, body, "\"" + Convert.ToHexString(SHA256.HashData(body))[..16] + "\"");
        }

        return assets;
    }
}
