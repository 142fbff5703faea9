using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Longshore.Backends.Mesos;

/// <summary>A call the master answered with something other than 202 Accepted (or 200 for SUBSCRIBE).</summary>
public sealed class MesosCallException(HttpStatusCode status, string body)
    : Exception($"the Mesos master answered {(int)status} {status}: {body}")
{
    public HttpStatusCode Status { get; } = status;

    public string Body { get; } = body;
}

/// <summary>
/// The master refuses this framework for good until its configuration changes: the credentials (401), or the ACLs on
/// its roles. The message is one line naming the setting to fix, with no secret in it.
/// </summary>
public sealed class MesosAccessException(string message) : Exception(message);

/// <summary>
/// HTTP plumbing of the v1 scheduler API: SUBSCRIBE (following 307 redirects to the leading master, trying each
/// configured master in turn) and calls carrying the <c>Mesos-Stream-Id</c> of the current subscription.
/// </summary>
/// <remarks>
/// The body is sent as <c>application/json</c> exactly: the master answers <c>application/json; charset=utf-8</c>
/// with 415, so <see cref="StringContent"/> (which adds a charset) is not used.
/// </remarks>
public sealed class MesosConnection : IDisposable
{
    public const string StreamIdHeader = "Mesos-Stream-Id";
    private const string SchedulerPath = "api/v1/scheduler";
    private const int MaxRedirects = 4;

    private readonly HttpClient _http;
    private readonly MesosBackendOptions _options;
    private volatile Uri? _leader;
    private volatile string? _streamId;

    public MesosConnection(MesosBackendOptions options, HttpMessageHandler? handler = null)
    {
        _options = options;
        // Redirects are followed by hand: the master's Location is protocol-relative (//host:port/...), and the leader
        // it names is remembered for every later call.
        _http = new HttpClient(handler ?? new SocketsHttpHandler { AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    /// <summary>The master that accepted the current subscription.</summary>
    public Uri? Leader => _leader;

    public string? StreamId => _streamId;

    /// <summary>
    /// Opens the event stream. Returns the open response (200, chunked RecordIO) with the stream id remembered.
    /// Throws <see cref="MesosCallException"/> for an answer no other master would change (400), else the last failure.
    /// </summary>
    public async Task<HttpResponseMessage> SubscribeAsync(JsonObject call, CancellationToken cancellationToken)
    {
        _streamId = null;
        Exception? last = null;
        var candidates = _leader is { } leader ? _options.Masters.Prepend(leader).Distinct() : _options.Masters;
        foreach (var master in candidates)
        {
            var target = master;
            for (var hop = 0; hop <= MaxRedirects; hop++)
            {
                HttpResponseMessage response;
                try
                {
                    response = await _http.SendAsync(Request(target, call, streamId: null), HttpCompletionOption.ResponseHeadersRead, cancellationToken);
                }
                catch (HttpRequestException e)
                {
                    last = e;
                    break;
                }

                if (response.StatusCode == HttpStatusCode.TemporaryRedirect && response.Headers.Location is { } location)
                {
                    response.Dispose();
                    target = Redirected(target, location);
                    continue;
                }

                if (response.StatusCode == HttpStatusCode.OK)
                {
                    _leader = target;
                    _streamId = response.Headers.TryGetValues(StreamIdHeader, out var ids) ? ids.FirstOrDefault() : null;
                    return response;
                }

                var body = await response.Content.ReadAsStringAsync(cancellationToken);
                response.Dispose();
                if (response.StatusCode == HttpStatusCode.Unauthorized)
                    throw Unauthorized(target);
                last = new MesosCallException(response.StatusCode, body);
                break;
            }
        }

        throw last ?? new HttpRequestException("no Mesos master configured");
    }

    /// <summary>
    /// Checks the credentials without subscribing (a subscription would take the framework over from the instance that
    /// holds it): a call the master must refuse as invalid, which it authenticates first. Throws
    /// <see cref="MesosAccessException"/> on 401; returns quietly when no master answers (that is for /healthz to tell).
    /// </summary>
    public async Task CheckCredentialsAsync(CancellationToken cancellationToken)
    {
        foreach (var master in _options.Masters)
        {
            var target = master;
            for (var hop = 0; hop <= MaxRedirects; hop++)
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TimeSpan.FromSeconds(5));
                HttpResponseMessage response;
                try
                {
                    response = await _http.SendAsync(Request(target, new JsonObject { ["type"] = "RECONCILE" }, streamId: null), timeout.Token);
                }
                catch (Exception e) when (e is HttpRequestException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                {
                    break;
                }

                using (response)
                {
                    if (response.StatusCode == HttpStatusCode.TemporaryRedirect && response.Headers.Location is { } location)
                    {
                        target = Redirected(target, location);
                        continue;
                    }

                    if (response.StatusCode == HttpStatusCode.Unauthorized)
                        throw Unauthorized(target);
                    if (response.StatusCode == HttpStatusCode.BadRequest)
                        return;
                    break;
                }
            }
        }
    }

    /// <summary>The one line for a 401: the principal is named, the secret never.</summary>
    public MesosAccessException Unauthorized(Uri master) => _options.Principal is { } principal
        ? new MesosAccessException($"mesos-secret: the Mesos master {Root(master)} refused principal '{principal}' (401 Unauthorized): check --mesos-principal and --mesos-secret-file")
        : new MesosAccessException($"mesos-principal: the Mesos master {Root(master)} requires authentication (401 Unauthorized): give --mesos-principal and --mesos-secret-file");

    /// <summary>Sends a call on the current subscription; throws <see cref="MesosCallException"/> unless it is accepted.</summary>
    public async Task CallAsync(JsonObject call, CancellationToken cancellationToken)
    {
        var leader = _leader ?? throw new InvalidOperationException("not subscribed");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        using var response = await _http.SendAsync(Request(leader, call, _streamId), timeout.Token);
        if (response.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.OK)
            return;
        throw new MesosCallException(response.StatusCode, await response.Content.ReadAsStringAsync(timeout.Token));
    }

    /// <summary>GET on any configured master (health probes, <c>/master/slaves</c>), with the framework's credentials.</summary>
    public Task<(HttpStatusCode Status, string Body)> GetFromMasterAsync(Uri master, string path, CancellationToken cancellationToken) =>
        GetAsync(new Uri(Root(master), path), cancellationToken);

    /// <summary>GET on an agent (the files API), with the framework's credentials.</summary>
    public async Task<(HttpStatusCode Status, string Body)> GetAsync(Uri uri, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        Authorize(request);
        using var response = await _http.SendAsync(request, cancellationToken);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
    }

    public void Dispose() => _http.Dispose();

    /// <summary>The target of a 307: Mesos sends <c>//host:port/path</c>, resolved against the scheme of the master asked.</summary>
    public static Uri Redirected(Uri from, Uri location)
    {
        var absolute = location.IsAbsoluteUri ? location : new Uri(from, location.OriginalString);
        return new Uri(absolute.GetLeftPart(UriPartial.Authority) + "/");
    }

    private static Uri Root(Uri master) => new(master.GetLeftPart(UriPartial.Authority) + "/");

    private HttpRequestMessage Request(Uri master, JsonObject call, string? streamId)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(Root(master), SchedulerPath))
        {
            Content = new ByteArrayContent(Encoding.UTF8.GetBytes(call.ToJsonString())),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (streamId is not null)
            request.Headers.TryAddWithoutValidation(StreamIdHeader, streamId);
        Authorize(request);
        return request;
    }

    private void Authorize(HttpRequestMessage request)
    {
        if (_options.Principal is not null)
        {
            var token = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{_options.Principal}:{_options.Secret}"));
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", token);
        }
    }
}
