using Longshore.Server.Api;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Longshore.Server.Security;

/// <summary>
/// Requires a bearer token on every route but <c>GET /healthz</c> when tokens are configured; changes need an
/// operator token. Every change is written to the audit log: who, what, on which path, with what result.
/// </summary>
public static partial class AccessControl
{
    public static void UseAccessControl(this WebApplication app, AccessTokens tokens)
    {
        var audit = app.Services.GetService(typeof(ILoggerFactory)) is ILoggerFactory factory ? factory.CreateLogger("Longshore.Audit") : null;
        app.Use(async (context, next) =>
        {
            var request = context.Request;
            var change = IsChange(request);
            string who = "anonymous (open loopback mode)";
            if (tokens.Enabled && !IsPublic(request))
            {
                var presented = Presented(request);
                if (presented is null)
                {
                    context.Response.Headers.WWWAuthenticate = "Bearer";
                    await ApiResults.Error(StatusCodes.Status401Unauthorized, "authentication required: send 'Authorization: Bearer <token>'").ExecuteAsync(context);
                    return;
                }

                var token = tokens.Find(presented);
                if (token is null)
                {
                    context.Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\"";
                    await ApiResults.Error(StatusCodes.Status401Unauthorized, "the bearer token is not valid").ExecuteAsync(context);
                    return;
                }

                who = $"{token.Name} ({token.Role.ToString().ToLowerInvariant()})";
                if (change && token.Role != AccessRole.Operator)
                {
                    await ApiResults.Error(StatusCodes.Status403Forbidden,
                        $"token '{token.Name}' is read-only; {request.Method} {request.Path} needs an operator token").ExecuteAsync(context);
                    if (audit is not null)
                        LogAudit(audit, who, request.Method, request.Path.Value ?? string.Empty, StatusCodes.Status403Forbidden);
                    return;
                }
            }

            await next(context);
            if (change && audit is not null)
                LogAudit(audit, who, request.Method, request.Path.Value ?? string.Empty, context.Response.StatusCode);
        });
    }

    /// <summary>Health for probes, and the dashboard's page and assets, which hold no data (the page asks for a token).</summary>
    private static bool IsPublic(HttpRequest request) =>
        HttpMethods.IsGet(request.Method) && (request.Path.Equals("/healthz", StringComparison.Ordinal) || request.Path.Equals("/", StringComparison.Ordinal)
            || request.Path.StartsWithSegments("/dashboard", StringComparison.Ordinal));

    /// <summary>Anything but a read; the Hippo API also changes state with GET on kill, enable and disable.</summary>
    public static bool IsChange(HttpRequest request) =>
        !(HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method) || HttpMethods.IsOptions(request.Method))
        || (request.Path.Value is { } path && (path.TrimEnd('/').EndsWith("/kill", StringComparison.Ordinal)
            || path.TrimEnd('/').EndsWith("/enable", StringComparison.Ordinal) || path.TrimEnd('/').EndsWith("/disable", StringComparison.Ordinal)));

    private static string? Presented(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return header["Bearer ".Length..].Trim();
        // Browsers cannot set headers on EventSource streams: the dashboard's live updates pass the token this way.
        if (HttpMethods.IsGet(request.Method) && request.Query.TryGetValue("access_token", out var query))
            return query.ToString();
        return null;
    }

    [LoggerMessage(4001, LogLevel.Information, "audit: {Who} {Method} {Path} -> {Status}")]
    private static partial void LogAudit(ILogger logger, string who, string method, string path, int status);
}
