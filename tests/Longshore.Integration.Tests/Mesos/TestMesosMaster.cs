using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>
/// A protocol-faithful stand-in for a Mesos 1.12 master (and its agents' files API) on 127.0.0.1: the same response
/// heads, errors and check order as the recorded transcripts, one RecordIO record per HTTP chunk, heartbeats, offers
/// with attributes, status updates re-sent until acknowledged, reconciliation answers, redirects from a non-leader,
/// failover that drops the stream, lost agents. Written on raw sockets so every byte of a head is under control.
/// Frameworks are not PARTITION_AWARE here (the backend does not ask for it): unknown tasks reconcile as TASK_LOST.
/// </summary>
public sealed partial class TestMesosMaster : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly Task _accepting;
    private readonly Task _ticking;
    private readonly string _masterId = Guid.NewGuid().ToString();
    private readonly Dictionary<string, Framework> _frameworks = new(StringComparer.Ordinal);
    private int _frameworkCount;
    private int _offerCount;

    private TestMesosMaster(Uri? leader)
    {
        LeaderRedirect = leader;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = Task.Run(AcceptLoopAsync);
        _ticking = Task.Run(TickLoopAsync);
    }

    public int Port { get; }

    public Uri Uri => new($"http://127.0.0.1:{Port}/");

    /// <summary>When set, this master is not the leader and redirects every scheduler call there.</summary>
    public Uri? LeaderRedirect { get; }

    /// <summary>
    /// A newly elected leader still recovering its registry: scheduler calls get 503 "Master has not finished recovery"
    /// (recorded in 14-failover).
    /// </summary>
    public bool Recovering { get; set; }

    /// <summary>
    /// <c>--authenticate_http_frameworks</c> with basic credentials (principal → secret): scheduler calls without the
    /// right Authorization get the recorded 401 (12-auth). Null: no authentication.
    /// </summary>
    public Dictionary<string, string>? Credentials { get; set; }

    /// <summary>
    /// ACLs on <c>register_frameworks</c>: the roles each principal may subscribe with; a principal not listed may use any.
    /// A refused SUBSCRIBE gets 200, an ERROR event and the end of the stream, and nothing is registered (12-auth).
    /// </summary>
    public Dictionary<string, string[]> AllowedRoles { get; } = new(StringComparer.Ordinal);

    public double HeartbeatSeconds { get; set; } = 15.0;

    /// <summary>How soon an unacknowledged agent update is sent again.</summary>
    public TimeSpan ResendAfter { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a task runs before its command "exits" (tasks whose command has <c>sleep</c> run until killed).</summary>
    public TimeSpan RunTime { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Acknowledgements still to be ignored (answered 202 but not applied), so updates get re-sent.</summary>
    public int DropAcks { get; set; }

    /// <summary>Stop sending heartbeats (and everything else) on the open streams, leaving them open: a hung master.</summary>
    public bool Silent { get; set; }

    public List<Agent> Agents { get; } = [];

    /// <summary>Every call received on /api/v1/scheduler: (type, body).</summary>
    public ConcurrentQueue<(string Type, JsonElement Body)> Calls { get; } = new();

    /// <summary>The Authorization header of every scheduler call (null when absent).</summary>
    public ConcurrentQueue<string?> Authorizations { get; } = new();

    /// <summary>How many times each update (task id + state) was written to a stream, re-sends included.</summary>
    public ConcurrentDictionary<string, int> UpdateSends { get; } = new(StringComparer.Ordinal);

    /// <summary>Every task id a LAUNCH asked for, in order, with duplicates.</summary>
    public ConcurrentQueue<string> Launches { get; } = new();

    /// <summary>The role of every offer an ACCEPT took, by offer id.</summary>
    public ConcurrentDictionary<string, string> AcceptedOfferRoles { get; } = new(StringComparer.Ordinal);

    public static TestMesosMaster Start(Uri? leader = null) => new(leader);

    public Agent AddAgent(string hostname, double cpus = 4, double mem = 4096, params (string Key, string Value)[] attributes) =>
        AddAgent(hostname, cpus, mem, roles: null, attributes);

    /// <param name="roles">
    /// The roles the allocator gives this agent's free resources to, split evenly, one offer per role (each offer and
    /// resource carrying <c>allocation_info.role</c>); null gives them all to the framework's first role.
    /// </param>
    public Agent AddAgent(string hostname, double cpus, double mem, string[]? roles, params (string Key, string Value)[] attributes)
    {
        var agent = new Agent($"{_masterId}-S{Agents.Count}", hostname, cpus, mem, attributes.ToDictionary(a => a.Key, a => a.Value)) { Roles = roles };
        lock (_gate)
            Agents.Add(agent);
        return agent;
    }

    public IReadOnlyList<TaskInfo> Tasks
    {
        get
        {
            lock (_gate)
                return _frameworks.Values.SelectMany(f => f.Tasks.Values).ToArray();
        }
    }

    /// <summary>Every framework the master has registered, in no order.</summary>
    public IReadOnlyList<string> FrameworkIds
    {
        get
        {
            lock (_gate)
                return _frameworks.Keys.ToArray();
        }
    }

    public TaskInfo? FindTask(string taskId)
    {
        lock (_gate)
            return _frameworks.Values.Select(f => f.Tasks.GetValueOrDefault(taskId)).FirstOrDefault(t => t is not null);
    }

    public int CallCount(string type) => Calls.Count(c => c.Type == type);

    /// <summary>The agent disappears: its tasks end TASK_LOST (sent by the master, no uuid) and it is offered no more.</summary>
    public void LoseAgent(Agent agent)
    {
        lock (_gate)
        {
            agent.Alive = false;
            foreach (var framework in _frameworks.Values)
            {
                foreach (var task in framework.Tasks.Values.Where(t => t.AgentId == agent.Id && !IsTerminal(t.State)))
                {
                    task.State = "TASK_LOST";
                    framework.Send(Update(task, "TASK_LOST", "SOURCE_MASTER", "REASON_AGENT_REMOVED", $"Agent {agent.Hostname} removed: health check timed out", uuid: null));
                }

                framework.Offers.RemoveAll(o => o.AgentId == agent.Id);
            }
        }
    }

    /// <summary>The leading master fails over: every open stream is dropped without an ERROR; frameworks must resubscribe.</summary>
    public void DropStreams()
    {
        lock (_gate)
        {
            foreach (var framework in _frameworks.Values)
            {
                framework.Stream?.Abort();
                framework.Stream = null;
                framework.Offers.Clear();
            }
        }
    }

    /// <summary>Ends a running task as the agent would report it (with a uuid, re-sent until acknowledged).</summary>
    public void Finish(string taskId, string state, string message)
    {
        lock (_gate)
        {
            foreach (var framework in _frameworks.Values)
            {
                if (framework.Tasks.TryGetValue(taskId, out var task) && !IsTerminal(task.State))
                    AgentUpdate(framework, task, state, message, reason: null);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        lock (_gate)
        {
            foreach (var framework in _frameworks.Values)
                framework.Stream?.Abort();
        }

        await _accepting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _ticking.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = System.Threading.Tasks.Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        var stream = client.GetStream();
        try
        {
            while (await HttpRequest.ReadAsync(stream, _stop.Token) is { } request)
            {
                if (await HandleAsync(request, stream))
                    return;
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }

    /// <summary>Answers one request; true when the connection became an event stream (and has ended).</summary>
    private async Task<bool> HandleAsync(HttpRequest request, NetworkStream stream)
    {
        var path = request.Target.Split('?')[0];
        switch (path)
        {
            case "/version":
                await WriteAsync(stream, 200, "OK", [("Content-Type", "application/json")], """{"build_date":"2026-11-23 21:42:09","build_time":1795470129.0,"build_user":"","version":"1.12.0"}""");
                return false;
            case "/master/health":
                await WriteAsync(stream, 200, "OK", [], "");
                return false;
            case "/files/read":
                await FilesReadAsync(request, stream);
                return false;
            case "/master/slaves":
                // The recorded shape, cut to the fields a client reads: every agent serves its files API here.
                await WriteAsync(stream, 200, "OK", [("Content-Type", "application/json")], SlavesJson());
                return false;
            case "/api/v1/scheduler":
                break;
            default:
                await WriteAsync(stream, 404, "Not Found", [], "");
                return false;
        }

        if (request.Method != "POST")
        {
            await WriteAsync(stream, 405, "Method Not Allowed", [("Allow", "POST"), ("Content-Type", "text/plain; charset=utf-8")],
                $"405 Method Not Allowed. Expecting one of {{ 'POST' }}, but received '{request.Method}'.");
            return false;
        }

        // The master authenticates before anything else, a non-leader included (12-auth).
        Authorizations.Enqueue(request.Header("Authorization"));
        var principal = Authenticate(request.Header("Authorization"));
        if (Credentials is not null && principal is null)
        {
            await WriteAsync(stream, 401, "Unauthorized", [("WWW-Authenticate", "Basic realm=\"mesos-master-scheduler\""), ("Content-Type", "text/plain; charset=utf-8")],
                "401 Unauthorized.");
            return false;
        }

        if (LeaderRedirect is { } leader)
        {
            // The recorded Location names the leader's /master/api/v1/scheduler (14-failover).
            await WriteAsync(stream, 307, "Temporary Redirect", [("Location", $"//{leader.Authority}/master/api/v1/scheduler")], "");
            return false;
        }

        if (Recovering)
        {
            await WriteAsync(stream, 503, "Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")], "Master has not finished recovery");
            return false;
        }

        var (status, error, call) = Validate(request, principal);
        if (call is not null)
            Calls.Enqueue((call.Value.GetProperty("type").GetString()!, call.Value));
        if (error is not null)
        {
            await WriteAsync(stream, status, Reason(status), [("Content-Type", "text/plain; charset=utf-8")], error);
            return false;
        }

        var type = call!.Value.GetProperty("type").GetString();
        if (type == "SUBSCRIBE")
        {
            await SubscribeAsync(call.Value, stream);
            return true;
        }

        (status, error) = Dispatch(type!, call.Value, request.Header("Mesos-Stream-Id"));
        if (error is not null)
            await WriteAsync(stream, status, Reason(status), [("Content-Type", "text/plain; charset=utf-8")], error);
        else
            await WriteAsync(stream, 202, "Accepted", [], "");
        return false;
    }

    /// <summary>The principal whose basic credentials match, when <see cref="Credentials"/> are set.</summary>
    private string? Authenticate(string? authorization)
    {
        if (Credentials is null || authorization is null || !authorization.StartsWith("Basic ", StringComparison.Ordinal))
            return null;
        string decoded;
        try
        {
            decoded = Encoding.UTF8.GetString(Convert.FromBase64String(authorization["Basic ".Length..]));
        }
        catch (FormatException)
        {
            return null;
        }

        var colon = decoded.IndexOf(':', StringComparison.Ordinal);
        return colon > 0 && Credentials.TryGetValue(decoded[..colon], out var secret) && secret == decoded[(colon + 1)..] ? decoded[..colon] : null;
    }

    /// <summary>The checks in the master's order: Content-Type, JSON, protobuf conversion, validation (recorded in 08-errors).</summary>
    private static (int Status, string? Error, JsonElement? Call) Validate(HttpRequest request, string? principal)
    {
        var contentType = request.Header("Content-Type");
        if (contentType is null)
            return (400, "Expecting 'Content-Type' to be present", null);
        if (contentType != "application/json")
            return (415, "Expecting 'Content-Type' of application/json or application/x-protobuf", null);
        JsonElement call;
        try
        {
            call = JsonDocument.Parse(request.Body).RootElement.Clone();
        }
        catch (JsonException)
        {
            return (400, "Failed to parse body into JSON: syntax error at line 1 near: ", null);
        }

        if (call.TryGetProperty("framework_id", out var fid) && fid.ValueKind != JsonValueKind.Object)
            return (400, "Failed to convert JSON into Call protobuf: Not expecting a JSON string for field 'framework_id'", null);
        var type = call.TryGetProperty("type", out var t) ? t.GetString() : null;
        string[] known = ["SUBSCRIBE", "TEARDOWN", "ACCEPT", "DECLINE", "REVIVE", "KILL", "SHUTDOWN", "ACKNOWLEDGE", "RECONCILE", "MESSAGE", "REQUEST", "SUPPRESS"];
        if (type is null || !known.Contains(type))
            return (400, "Failed to validate scheduler::Call: Expecting 'type' to be present", null);
        if (type == "SUBSCRIBE")
        {
            if (!call.TryGetProperty("subscribe", out var subscribe))
                return (400, "Failed to validate scheduler::Call: Expecting 'subscribe' to be present", call);
            var info = subscribe.GetProperty("framework_info");
            if (!info.TryGetProperty("name", out _))
                return (400, "Failed to convert JSON into Call protobuf: Missing required fields: subscribe.framework_info.name", call);
            if (call.TryGetProperty("framework_id", out var callId) && (!info.TryGetProperty("id", out var infoId) || infoId.GetRawText() != callId.GetRawText()))
                return (400, "Failed to validate scheduler::Call: 'framework_id' differs from 'subscribe.framework_info.id'", call);
            if (principal is not null && info.TryGetProperty("principal", out var named) && named.GetString() != principal)
                return (400, $"Failed to validate scheduler::Call: Authenticated principal '{principal}' does not match principal '{named.GetString()}' set in `FrameworkInfo`", call);
            if (request.Header("Mesos-Stream-Id") is not null)
                return (400, "Subscribe calls should not include the 'Mesos-Stream-Id' header", call);
            var accept = request.Header("Accept");
            if (accept is not null && accept != "application/json" && accept != "*/*")
                return (406, "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'", call);
            return (200, null, call);
        }

        if (!call.TryGetProperty("framework_id", out _))
            return (400, "Failed to validate scheduler::Call: Expecting 'framework_id' to be present", call);
        var field = type.ToLowerInvariant();
        if (type is "ACCEPT" or "DECLINE" or "KILL" or "ACKNOWLEDGE" or "RECONCILE" && !call.TryGetProperty(field, out _))
            return (400, $"Failed to validate scheduler::Call: Expecting '{field}' to be present", call);
        return (202, null, call);
    }

    private (int Status, string? Error) Dispatch(string type, JsonElement call, string? streamId)
    {
        var frameworkId = call.GetProperty("framework_id").GetProperty("value").GetString()!;
        lock (_gate)
        {
            if (!_frameworks.TryGetValue(frameworkId, out var framework) || framework.Removed)
                return (400, "Framework cannot be found");
            if (framework.Stream is null)
                return (403, "Framework is not subscribed");
            if (streamId is null)
                return (400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header");
            if (streamId != framework.Stream.Id)
                return (400, $"The stream ID '{streamId}' included in this request didn't match the stream ID currently associated with framework ID {frameworkId}");
            switch (type)
            {
                case "ACCEPT":
                    Accept(framework, call.GetProperty("accept"));
                    break;
                case "DECLINE":
                    var decline = call.GetProperty("decline");
                    foreach (var id in decline.GetProperty("offer_ids").EnumerateArray().Select(o => o.GetProperty("value").GetString()))
                    {
                        var offer = framework.Offers.FirstOrDefault(o => o.Id == id);
                        if (offer is null)
                            continue;
                        framework.Offers.Remove(offer);
                        framework.Refused[offer.AgentId] = DateTimeOffset.UtcNow + Refuse(decline);
                    }

                    break;
                case "SUPPRESS":
                    framework.Suppressed = true;
                    break;
                case "REVIVE":
                    framework.Suppressed = false;
                    framework.Refused.Clear();
                    break;
                case "KILL":
                    Kill(framework, call.GetProperty("kill"));
                    break;
                case "ACKNOWLEDGE":
                    var ack = call.GetProperty("acknowledge");
                    if (ack.GetProperty("uuid").GetString() is not { } uuid || Convert.FromBase64String(uuid).Length != 16)
                        return (400, "Failed to validate scheduler::Call: Not a valid UUID");
                    var taskId = ack.GetProperty("task_id").GetProperty("value").GetString()!;
                    if (DropAcks > 0)
                    {
                        DropAcks--;
                        break;
                    }

                    if (framework.Tasks.TryGetValue(taskId, out var acked) && acked.Unacked.Count > 0 && acked.Unacked.Peek().Uuid == uuid)
                    {
                        acked.Unacked.Dequeue();
                        acked.LastSent = DateTimeOffset.MinValue;
                        if (acked.Unacked.Count > 0)
                            SendHead(framework, acked);
                    }

                    break;
                case "RECONCILE":
                    Reconcile(framework, call.GetProperty("reconcile"));
                    break;
                case "TEARDOWN":
                    framework.Removed = true;
                    foreach (var task in framework.Tasks.Values)
                        task.State = "TASK_KILLED";
                    framework.Stream.End();
                    framework.Stream = null;
                    break;
            }
        }

        return (202, null);
    }

    private static TimeSpan Refuse(JsonElement call) =>
        TimeSpan.FromSeconds(call.TryGetProperty("filters", out var f) && f.TryGetProperty("refuse_seconds", out var r) ? r.GetDouble() : 5.0);

    private async Task SubscribeAsync(JsonElement call, NetworkStream network)
    {
        var info = call.GetProperty("subscribe").GetProperty("framework_info");
        var requested = call.TryGetProperty("framework_id", out var fid) ? fid.GetProperty("value").GetString() : null;
        var stream = new EventStream(Guid.NewGuid().ToString(), network);
        var asked = info.TryGetProperty("roles", out var askedRoles) ? askedRoles.EnumerateArray().Select(r => r.GetString()!).ToArray() : ["*"];
        var allowed = info.TryGetProperty("principal", out var p) && AllowedRoles.TryGetValue(p.GetString()!, out var roles) ? roles : null;
        if (allowed is not null && asked.Except(allowed).ToArray() is { Length: > 0 } refused)
        {
            await stream.WriteHeadAsync();
            stream.Send(new JsonObject
            {
                ["type"] = "ERROR",
                ["error"] = new JsonObject { ["message"] = $"Not authorized to register framework  with roles {{ {string.Join(", ", refused)} }}" },
            }.ToJsonString());
            stream.End();
            await stream.Completion;
            return;
        }

        Framework framework;
        lock (_gate)
        {
            if (requested is not null && _frameworks.TryGetValue(requested, out var existing))
            {
                framework = existing;
                if (framework.Removed)
                {
                    stream.Removed = true;
                }
                else if (framework.Stream is { } old)
                {
                    old.Send("""{"type":"ERROR","error":{"message":"Framework failed over"}}""");
                    old.End();
                }
            }
            else
            {
                var id = requested ?? $"{_masterId}-{_frameworkCount++:D4}";
                framework = new Framework(id, info.GetProperty("name").GetString()!);
                if (info.TryGetProperty("roles", out var frameworkRoles))
                    framework.Roles.AddRange(frameworkRoles.EnumerateArray().Select(r => r.GetString()!));
                if (framework.Roles.Count == 0)
                    framework.Roles.Add("*");
                _frameworks[id] = framework;
            }

            if (!stream.Removed)
            {
                framework.Stream = stream;
                framework.Suppressed = false;
                framework.Offers.Clear();
                framework.Refused.Clear();
                framework.Subscriptions++;
                // Queued under the same lock that publishes the stream, so SUBSCRIBED is always its first record
                // (the offer loop could otherwise get an OFFERS in first, which a real master never does).
                SendSubscribed(framework, stream);
            }
        }

        await stream.WriteHeadAsync();
        if (stream.Removed)
        {
            stream.Send("""{"type":"ERROR","error":{"message":"Framework has been removed"}}""");
            stream.End();
        }

        await stream.Completion;
    }

    private void SendSubscribed(Framework framework, EventStream stream)
    {
        stream.Send(new JsonObject
        {
            ["type"] = "SUBSCRIBED",
            ["subscribed"] = new JsonObject
            {
                ["framework_id"] = new JsonObject { ["value"] = framework.Id },
                ["heartbeat_interval_seconds"] = HeartbeatSeconds,
                ["master_info"] = new JsonObject
                {
                    ["id"] = _masterId,
                    ["ip"] = 16777343,
                    ["port"] = Port,
                    ["pid"] = $"master@127.0.0.1:{Port}",
                    ["hostname"] = "127.0.0.1",
                    ["version"] = "1.12.0",
                },
            },
        }.ToJsonString());
        stream.Send("""{"type":"HEARTBEAT"}""");
        stream.LastHeartbeat = DateTimeOffset.UtcNow;
        // The agents re-send what was never acknowledged as soon as the framework is back.
        foreach (var task in framework.Tasks.Values.Where(t => t.Unacked.Count > 0))
            SendHead(framework, task);
    }

    private void Accept(Framework framework, JsonElement accept)
    {
        var offerIds = accept.GetProperty("offer_ids").EnumerateArray().Select(o => o.GetProperty("value").GetString()!).ToArray();
        var offers = offerIds.Select(id => framework.Offers.FirstOrDefault(o => o.Id == id)).ToArray();
        var tasks = accept.GetProperty("operations").EnumerateArray()
            .Where(op => op.GetProperty("type").GetString() == "LAUNCH")
            .SelectMany(op => op.GetProperty("launch").GetProperty("task_infos").EnumerateArray()).ToArray();
        foreach (var task in tasks)
            Launches.Enqueue(task.GetProperty("task_id").GetProperty("value").GetString()!);
        if (offers.Any(o => o is null))
        {
            var bad = offerIds.First(id => framework.Offers.All(o => o.Id != id));
            foreach (var task in tasks)
            {
                var info = new TaskInfo(task.GetProperty("task_id").GetProperty("value").GetString()!, task.GetProperty("agent_id").GetProperty("value").GetString()!, task, "");
                framework.Send(Update(info, "TASK_LOST", "SOURCE_MASTER", "REASON_INVALID_OFFERS", $"Task launched with invalid offers: Offer {bad} is no longer valid", uuid: null));
            }

            return;
        }

        foreach (var offer in offers)
            framework.Offers.Remove(offer!);
        // Mesos fills in each resource's allocation_info from the accepted offers, and a task's resources must all be
        // allocated to one role: offers of several roles in one ACCEPT leave a task without a single role.
        var offerRoles = offers.Select(o => o!.Role).Distinct().ToArray();
        foreach (var offer in offers)
            AcceptedOfferRoles[offer!.Id] = offer.Role;
        var agent = Agents.First(a => a.Id == offers[0]!.AgentId);
        framework.Refused[agent.Id] = DateTimeOffset.UtcNow + Refuse(accept);
        foreach (var json in tasks)
        {
            var taskId = json.GetProperty("task_id").GetProperty("value").GetString()!;
            var (cpus, mem, ports, reservedRole, reservedCpus, reservedMem) = Resources(json);
            var task = new TaskInfo(taskId, agent.Id, json, json.TryGetProperty("container", out _) ? "Container" : "Command")
            {
                Cpus = cpus, Mem = mem, Ports = ports, ReservedRole = reservedRole, ReservedCpus = reservedCpus, ReservedMem = reservedMem,
            };
            var taskRoles = json.GetProperty("resources").EnumerateArray()
                .Select(r => r.TryGetProperty("allocation_info", out var a) ? a.GetProperty("role").GetString() : offerRoles.Length == 1 ? offerRoles[0] : null)
                .Distinct().ToArray();
            if (taskRoles.Length != 1 || !offerRoles.Contains(taskRoles[0]))
            {
                framework.Send(Update(task, "TASK_ERROR", "SOURCE_MASTER", "REASON_TASK_INVALID", "Task resources are not allocated to a single role of its offers", uuid: null));
                continue;
            }

            if (framework.Tasks.ContainsKey(taskId))
            {
                framework.Send(Update(task, "TASK_ERROR", "SOURCE_MASTER", "REASON_TASK_INVALID", $"Task has duplicate ID: {taskId}", uuid: null));
                continue;
            }

            // Reserved resources come only from the reservation of the role the task is allocated to.
            var (freeReservedCpus, freeReservedMem) = reservedRole is null ? (0, 0) : agent.FreeReserved(framework, reservedRole);
            if ((reservedRole is not null && reservedRole != taskRoles[0]) || freeReservedCpus + 0.0005 < reservedCpus || freeReservedMem + 0.0005 < reservedMem
                || agent.FreeCpus(framework) + 0.0005 < cpus - reservedCpus || agent.FreeMem(framework) + 0.0005 < mem - reservedMem
                || !ports.All(agent.FreePorts(framework).Contains))
            {
                framework.Send(Update(task, "TASK_ERROR", "SOURCE_MASTER", "REASON_TASK_INVALID", "Task uses more resources than available", uuid: null));
                continue;
            }

            framework.Tasks[taskId] = task;
            agent.Sandboxes[taskId] = $"output of {taskId}\n";
            AgentUpdate(framework, task, "TASK_STARTING", null, null);
            AgentUpdate(framework, task, "TASK_RUNNING", null, null);
            var command = json.TryGetProperty("command", out var c) && c.TryGetProperty("value", out var v) ? v.GetString() ?? "" : "";
            if (!command.Contains("sleep", StringComparison.Ordinal))
            {
                var exit = ExitPattern().Match(command) is { Success: true } m ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
                task.EndsAt = DateTimeOffset.UtcNow + RunTime;
                task.ExitCode = exit;
            }
        }
    }

    [GeneratedRegex(@"exit (\d+)")]
    private static partial Regex ExitPattern();

    /// <summary>A task's cpus and mem in all, what of them it takes from a reservation, for which role, and its ports.</summary>
    private static (double Cpus, double Mem, int[] Ports, string? ReservedRole, double ReservedCpus, double ReservedMem) Resources(JsonElement task)
    {
        double cpus = 0, mem = 0, reservedCpus = 0, reservedMem = 0;
        string? reservedRole = null;
        var ports = new List<int>();
        foreach (var r in task.GetProperty("resources").EnumerateArray())
        {
            if (r.GetProperty("type").GetString() == "RANGES")
            {
                foreach (var range in r.GetProperty("ranges").GetProperty("range").EnumerateArray())
                    ports.AddRange(Enumerable.Range(range.GetProperty("begin").GetInt32(), range.GetProperty("end").GetInt32() - range.GetProperty("begin").GetInt32() + 1));
                continue;
            }

            var value = r.GetProperty("scalar").GetProperty("value").GetDouble();
            var reserved = r.TryGetProperty("role", out var role) && role.GetString() != "*" ? role.GetString() : null;
            if (reserved is not null)
                reservedRole = reserved;
            if (r.GetProperty("name").GetString() == "cpus")
            {
                cpus += value;
                reservedCpus += reserved is null ? 0 : value;
            }
            else if (r.GetProperty("name").GetString() == "mem")
            {
                mem += value;
                reservedMem += reserved is null ? 0 : value;
            }
        }

        return (cpus, mem, [.. ports], reservedRole, reservedCpus, reservedMem);
    }

    private void Kill(Framework framework, JsonElement kill)
    {
        var taskId = kill.GetProperty("task_id").GetProperty("value").GetString()!;
        var agentId = kill.TryGetProperty("agent_id", out var a) ? a.GetProperty("value").GetString() : null;
        if (framework.Tasks.TryGetValue(taskId, out var task) && !IsTerminal(task.State))
        {
            AgentUpdate(framework, task, "TASK_KILLING", null, null);
            task.EndsAt = DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(100);
            task.Killed = true;
            return;
        }

        framework.Send(Unknown(taskId, agentId));
    }

    private void Reconcile(Framework framework, JsonElement reconcile)
    {
        var asked = reconcile.TryGetProperty("tasks", out var t) ? t.EnumerateArray().ToArray() : [];
        if (asked.Length == 0)
        {
            foreach (var task in framework.Tasks.Values.Where(task => !IsTerminal(task.State)))
                framework.Send(Update(task, task.State, "SOURCE_MASTER", "REASON_RECONCILIATION", "Reconciliation: Latest task state", uuid: null));
            return;
        }

        foreach (var entry in asked)
        {
            var taskId = entry.GetProperty("task_id").GetProperty("value").GetString()!;
            var agentId = entry.TryGetProperty("agent_id", out var a) ? a.GetProperty("value").GetString() : null;
            if (framework.Tasks.TryGetValue(taskId, out var task) && (!IsTerminal(task.State) || task.Unacked.Count > 0))
                framework.Send(Update(task, task.State, "SOURCE_MASTER", "REASON_RECONCILIATION", "Reconciliation: Latest task state", uuid: null));
            else
                framework.Send(Unknown(taskId, agentId));
        }
    }

    private string Unknown(string taskId, string? agentId)
    {
        var knownAgent = agentId is not null && Agents.Any(a => a.Id == agentId && a.Alive);
        var status = new JsonObject
        {
            ["task_id"] = new JsonObject { ["value"] = taskId },
            ["state"] = "TASK_LOST",
            ["message"] = knownAgent ? "Reconciliation: Task is unknown to the agent" : "Reconciliation: Task is unknown",
            ["source"] = "SOURCE_MASTER",
            ["reason"] = "REASON_RECONCILIATION",
        };
        if (agentId is not null)
            status["agent_id"] = new JsonObject { ["value"] = agentId };
        status["timestamp"] = Timestamp();
        return new JsonObject { ["type"] = "UPDATE", ["update"] = new JsonObject { ["status"] = status } }.ToJsonString();
    }

    /// <summary>An update from the agent: queued, sent in order, each re-sent until acknowledged (as the agent does).</summary>
    private void AgentUpdate(Framework framework, TaskInfo task, string state, string? message, string? reason)
    {
        task.State = state;
        var uuid = Convert.ToBase64String(Guid.NewGuid().ToByteArray());
        task.Unacked.Enqueue(new Queued(uuid, Update(task, state, "SOURCE_EXECUTOR", reason, message, uuid), task.Id + " " + state));
        if (task.Unacked.Count == 1)
            SendHead(framework, task);
    }

    private void SendHead(Framework framework, TaskInfo task)
    {
        var head = task.Unacked.Peek();
        task.LastSent = DateTimeOffset.UtcNow;
        if (framework.Send(head.Json))
            UpdateSends.AddOrUpdate(head.Key, 1, (_, n) => n + 1);
    }

    private static string Update(TaskInfo task, string state, string source, string? reason, string? message, string? uuid)
    {
        var status = new JsonObject { ["task_id"] = new JsonObject { ["value"] = task.Id }, ["state"] = state };
        if (message is not null)
            status["message"] = message;
        status["source"] = source;
        if (reason is not null)
            status["reason"] = reason;
        status["agent_id"] = new JsonObject { ["value"] = task.AgentId };
        if (source == "SOURCE_EXECUTOR")
            status["executor_id"] = new JsonObject { ["value"] = task.Id };
        status["timestamp"] = Timestamp();
        if (uuid is not null)
            status["uuid"] = uuid;
        status["container_status"] = new JsonObject { ["container_id"] = new JsonObject { ["value"] = task.ContainerId } };
        return new JsonObject { ["type"] = "UPDATE", ["update"] = new JsonObject { ["status"] = status } }.ToJsonString();
    }

    private static double Timestamp() => TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0;

    private async Task TickLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await System.Threading.Tasks.Task.Delay(25, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            if (Silent)
                continue;
            lock (_gate)
            {
                var now = DateTimeOffset.UtcNow;
                foreach (var framework in _frameworks.Values.Where(f => f.Stream is not null))
                {
                    var stream = framework.Stream!;
                    if (now - stream.LastHeartbeat >= TimeSpan.FromSeconds(HeartbeatSeconds))
                    {
                        stream.Send("""{"type":"HEARTBEAT"}""");
                        stream.LastHeartbeat = now;
                    }

                    foreach (var task in framework.Tasks.Values)
                    {
                        if (task.EndsAt is { } end && now >= end && !IsTerminal(task.State))
                        {
                            task.EndsAt = null;
                            var kind = task.Kind;
                            if (task.Killed)
                                AgentUpdate(framework, task, "TASK_KILLED", kind == "Container" ? "Container exited with status 137" : "Command terminated with signal Terminated", null);
                            else
                                AgentUpdate(framework, task, task.ExitCode == 0 ? "TASK_FINISHED" : "TASK_FAILED", $"{kind} exited with status {task.ExitCode}", null);
                        }

                        if (task.Unacked.Count > 0 && now - task.LastSent >= ResendAfter)
                            SendHead(framework, task);
                    }

                    if (!framework.Suppressed)
                        OfferFreeAgents(framework, now);
                }
            }
        }
    }

    private void OfferFreeAgents(Framework framework, DateTimeOffset now)
    {
        var offers = new JsonArray();
        foreach (var agent in Agents.Where(a => a.Alive))
        {
            if (framework.Offers.Any(o => o.AgentId == agent.Id) || (framework.Refused.TryGetValue(agent.Id, out var until) && until > now))
                continue;
            var cpus = agent.FreeCpus(framework);
            var mem = agent.FreeMem(framework);
            var roles = agent.Roles ?? [framework.Roles.FirstOrDefault() ?? "*"];
            foreach (var role in roles.Where(framework.Roles.Contains))
            {
                var (reservedCpus, reservedMem) = agent.FreeReserved(framework, role);
                if ((cpus < 0.01 || mem < 1) && (reservedCpus < 0.01 || reservedMem < 1))
                    continue;
                var offer = new Offer($"{_masterId}-O{_offerCount++}", agent.Id, role);
                framework.Offers.Add(offer);
                offers.Add(OfferJson(framework, agent, offer, cpus / roles.Length, mem / roles.Length));
            }
        }

        if (offers.Count > 0)
            framework.Send(new JsonObject { ["type"] = "OFFERS", ["offers"] = new JsonObject { ["offers"] = offers } }.ToJsonString());
    }

    /// <summary>One offer as the master sends it, allocated to the offer's role. Ports go with the agent's first role only.</summary>
    private JsonObject OfferJson(Framework framework, Agent agent, Offer offer, double cpus, double mem)
    {
        var attributes = new JsonArray();
        foreach (var (name, value) in agent.Attributes)
            attributes.Add(new JsonObject { ["name"] = name, ["type"] = "TEXT", ["text"] = new JsonObject { ["value"] = value } });
        // In the recorded order (13-reserved): ports, what is reserved for the offer's role ("role":"batch"), then the
        // unreserved cpus and mem ("role":"*").
        var resources = new JsonArray();
        if (agent.Roles is null || agent.Roles[0] == offer.Role)
        {
            resources.Add(new JsonObject
            {
                ["name"] = "ports", ["type"] = "RANGES", ["ranges"] = new JsonObject { ["range"] = PortRanges(agent.FreePorts(framework)) }, ["role"] = "*",
                ["allocation_info"] = new JsonObject { ["role"] = offer.Role },
            });
        }

        var (reservedCpus, reservedMem) = agent.FreeReserved(framework, offer.Role);
        if (reservedCpus >= 0.001)
            resources.Add(Resource("cpus", reservedCpus, offer.Role, reservedFor: offer.Role));
        if (reservedMem >= 0.001)
            resources.Add(Resource("mem", reservedMem, offer.Role, reservedFor: offer.Role));
        if (cpus >= 0.001)
            resources.Add(Resource("cpus", cpus, offer.Role));
        if (mem >= 0.001)
            resources.Add(Resource("mem", mem, offer.Role));

        var json = new JsonObject
        {
            ["id"] = new JsonObject { ["value"] = offer.Id },
            ["framework_id"] = new JsonObject { ["value"] = framework.Id },
            ["agent_id"] = new JsonObject { ["value"] = agent.Id },
            ["hostname"] = agent.Hostname,
            ["url"] = new JsonObject
            {
                ["scheme"] = "http",
                ["address"] = new JsonObject { ["hostname"] = "127.0.0.1", ["ip"] = "127.0.0.1", ["port"] = Port },
                ["path"] = "/slave(1)",
            },
            ["resources"] = resources,
            ["allocation_info"] = new JsonObject { ["role"] = offer.Role },
        };
        if (attributes.Count > 0)
            json["attributes"] = attributes;
        return json;
    }

    private string SlavesJson()
    {
        var slaves = new JsonArray();
        lock (_gate)
        {
            foreach (var agent in Agents.Where(a => a.Alive))
            {
                slaves.Add(new JsonObject
                {
                    ["id"] = agent.Id,
                    ["hostname"] = agent.Hostname,
                    ["port"] = Port,
                    ["attributes"] = new JsonObject(),
                    ["pid"] = $"slave(1)@127.0.0.1:{Port}",
                    ["active"] = true,
                    ["version"] = "1.12.0",
                });
            }
        }

        return new JsonObject { ["slaves"] = slaves, ["recovered_slaves"] = new JsonArray() }.ToJsonString();
    }

    /// <summary>Free ports as the master offers them: the agent's range (31000-32000 by default) less what its tasks hold.</summary>
    private static JsonArray PortRanges(SortedSet<int> free)
    {
        var ranges = new JsonArray();
        int? begin = null, end = null;
        foreach (var port in free)
        {
            if (begin is not null && port == end + 1)
            {
                end = port;
                continue;
            }

            if (begin is not null)
                ranges.Add(new JsonObject { ["begin"] = begin, ["end"] = end });
            begin = end = port;
        }

        if (begin is not null)
            ranges.Add(new JsonObject { ["begin"] = begin, ["end"] = end });
        return ranges;
    }

    private static JsonObject Resource(string name, double value, string role, string reservedFor = "*") => new()
    {
        ["name"] = name,
        ["type"] = "SCALAR",
        ["scalar"] = new JsonObject { ["value"] = Math.Round(value, 3) },
        ["role"] = reservedFor,
        ["allocation_info"] = new JsonObject { ["role"] = role },
    };

    /// <summary>How long the agent's files API takes to answer (a loaded agent).</summary>
    public TimeSpan FilesDelay { get; set; }

    private async Task FilesReadAsync(HttpRequest request, NetworkStream stream)
    {
        if (FilesDelay > TimeSpan.Zero)
            await System.Threading.Tasks.Task.Delay(FilesDelay);
        var query = request.Target.Contains('?', StringComparison.Ordinal) ? request.Target[(request.Target.IndexOf('?', StringComparison.Ordinal) + 1)..] : "";
        var args = query.Split('&', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2))
            .ToDictionary(p => p[0], p => p.Length > 1 ? Uri.UnescapeDataString(p[1]) : "", StringComparer.Ordinal);
        if (!args.TryGetValue("path", out var path))
        {
            await WriteAsync(stream, 400, "Bad Request", [("Content-Type", "text/plain; charset=utf-8")], "Expecting 'path=value' in query.\n");
            return;
        }

        // /frameworks/<fid>/executors/<eid>/runs/latest/<file>
        var parts = path.Split('/');
        string? content = null;
        if (parts.Length == 8 && parts[1] == "frameworks" && parts[3] == "executors")
        {
            lock (_gate)
            {
                var agent = Agents.FirstOrDefault(a => a.Sandboxes.ContainsKey(parts[4]));
                content = agent is null ? null : parts[7] switch { "stdout" => agent.Sandboxes[parts[4]], "stderr" => "I1123 executor log\n", _ => null };
            }
        }

        if (content is null)
        {
            await WriteAsync(stream, 404, "Not Found", [("Content-Type", "text/plain; charset=utf-8")], "");
            return;
        }

        var bytes = Encoding.UTF8.GetBytes(content);
        var offset = args.TryGetValue("offset", out var o) ? long.Parse(o, CultureInfo.InvariantCulture) : -1;
        string answer;
        if (offset < 0)
        {
            answer = new JsonObject { ["data"] = "", ["offset"] = bytes.Length }.ToJsonString();
        }
        else
        {
            var length = args.TryGetValue("length", out var l) ? long.Parse(l, CultureInfo.InvariantCulture) : bytes.Length;
            var from = (int)Math.Min(offset, bytes.Length);
            var count = (int)Math.Min(length, bytes.Length - from);
            answer = new JsonObject { ["data"] = Encoding.UTF8.GetString(bytes, from, count), ["offset"] = offset }.ToJsonString();
        }

        await WriteAsync(stream, 200, "OK", [("Content-Type", "application/json")], answer);
    }

    private static string Reason(int status) => status switch
    {
        200 => "OK",
        202 => "Accepted",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        415 => "Unsupported Media Type",
        503 => "Service Unavailable",
        _ => "Error",
    };

    /// <summary>A non-streaming answer with the master's head: status line, Date, extra headers, Content-Length.</summary>
    private static async Task WriteAsync(NetworkStream stream, int status, string reason, (string Name, string Value)[] headers, string body)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var head = new StringBuilder($"HTTP/1.1 {status} {reason}\r\nDate: {HttpDate()}\r\n");
        foreach (var (name, value) in headers)
            head.Append(CultureInfo.InvariantCulture, $"{name}: {value}\r\n");
        head.Append(CultureInfo.InvariantCulture, $"Content-Length: {bytes.Length}\r\n\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()).Concat(bytes).ToArray());
    }

    private static string HttpDate() => TimeProvider.System.GetUtcNow().ToString("r", CultureInfo.InvariantCulture);

    private static bool IsTerminal(string state) => state is "TASK_FINISHED" or "TASK_FAILED" or "TASK_KILLED" or "TASK_LOST" or "TASK_ERROR"
        or "TASK_DROPPED" or "TASK_GONE" or "TASK_GONE_BY_OPERATOR" or "TASK_UNKNOWN";

    public sealed class Agent(string id, string hostname, double cpus, double mem, Dictionary<string, string> attributes)
    {
        public string Id { get; } = id;

        public string Hostname { get; } = hostname;

        public double Cpus { get; } = cpus;

        public double Mem { get; } = mem;

        public Dictionary<string, string> Attributes { get; } = attributes;

        public string[]? Roles { get; init; }

        public bool Alive { get; set; } = true;

        internal Dictionary<string, string> Sandboxes { get; } = new(StringComparer.Ordinal);

        /// <summary>Resources reserved for a role (<c>--resources=cpus(batch):1;mem(batch):512</c>), beside the unreserved <see cref="Cpus"/> and <see cref="Mem"/>.</summary>
        public Dictionary<string, (double Cpus, double Mem)> Reserved { get; } = new(StringComparer.Ordinal);

        internal double FreeCpus(Framework framework) => Cpus - Live(framework).Sum(t => t.Cpus - t.ReservedCpus);

        internal double FreeMem(Framework framework) => Mem - Live(framework).Sum(t => t.Mem - t.ReservedMem);

        internal (double Cpus, double Mem) FreeReserved(Framework framework, string role) => Reserved.TryGetValue(role, out var reserved)
            ? (reserved.Cpus - Live(framework).Where(t => t.ReservedRole == role).Sum(t => t.ReservedCpus),
               reserved.Mem - Live(framework).Where(t => t.ReservedRole == role).Sum(t => t.ReservedMem))
            : (0, 0);

        private IEnumerable<TaskInfo> Live(Framework framework) => framework.Tasks.Values.Where(t => t.AgentId == Id && !IsTerminal(t.State));

        internal SortedSet<int> FreePorts(Framework framework)
        {
            var free = new SortedSet<int>(Enumerable.Range(31000, 1001));
            free.ExceptWith(framework.Tasks.Values.Where(t => t.AgentId == Id && !IsTerminal(t.State)).SelectMany(t => t.Ports));
            return free;
        }
    }

    public sealed class TaskInfo(string id, string agentId, JsonElement json, string kind)
    {
        public string Id { get; } = id;

        public string AgentId { get; } = agentId;

        public JsonElement Json { get; } = json.Clone();

        public string Kind { get; } = kind;

        public string ContainerId { get; } = Guid.NewGuid().ToString();

        public string State { get; set; } = "TASK_STAGING";

        public double Cpus { get; init; }

        public double Mem { get; init; }

        public int[] Ports { get; init; } = [];

        /// <summary>The role whose reservation the task draws on, and how much of its cpus and mem come from it.</summary>
        public string? ReservedRole { get; init; }

        public double ReservedCpus { get; init; }

        public double ReservedMem { get; init; }

        internal DateTimeOffset? EndsAt { get; set; }

        internal int ExitCode { get; set; }

        internal bool Killed { get; set; }

        internal Queue<Queued> Unacked { get; } = new();

        internal DateTimeOffset LastSent { get; set; }
    }

    internal sealed record Queued(string Uuid, string Json, string Key);

    internal sealed record Offer(string Id, string AgentId, string Role);

    internal sealed class Framework(string id, string name)
    {
        public string Id { get; } = id;

        public string Name { get; } = name;

        public List<string> Roles { get; } = [];

        public EventStream? Stream { get; set; }

        public bool Suppressed { get; set; }

        public bool Removed { get; set; }

        public int Subscriptions { get; set; }

        public List<Offer> Offers { get; } = [];

        public Dictionary<string, DateTimeOffset> Refused { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, TaskInfo> Tasks { get; } = new(StringComparer.Ordinal);

        public bool Send(string json) => Stream?.Send(json) ?? false;
    }

    /// <summary>One SUBSCRIBE connection: records queued in order and written one per HTTP chunk.</summary>
    internal sealed class EventStream(string id, NetworkStream network)
    {
        private readonly System.Threading.Channels.Channel<byte[]?> _out = System.Threading.Channels.Channel.CreateUnbounded<byte[]?>();
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private volatile bool _aborted;

        public string Id { get; } = id;

        public bool Removed { get; set; }

        public DateTimeOffset LastHeartbeat { get; set; }

        public Task Completion => _done.Task;

        public async Task WriteHeadAsync()
        {
            var head = $"HTTP/1.1 200 OK\r\nDate: {HttpDate()}\r\nTransfer-Encoding: chunked\r\nMesos-Stream-Id: {Id}\r\nContent-Type: application/json\r\n\r\n";
            await network.WriteAsync(Encoding.ASCII.GetBytes(head));
            _ = System.Threading.Tasks.Task.Run(PumpAsync);
        }

        public bool Send(string json)
        {
            if (_aborted)
                return false;
            var record = Longshore.Backends.Mesos.RecordIoReader.Frame(Encoding.UTF8.GetBytes(json));
            var chunk = Encoding.ASCII.GetBytes(record.Length.ToString("x", CultureInfo.InvariantCulture) + "\r\n").Concat(record).Concat("\r\n"u8.ToArray()).ToArray();
            return _out.Writer.TryWrite(chunk);
        }

        /// <summary>Ends the stream cleanly with the terminating chunk.</summary>
        public void End()
        {
            _out.Writer.TryWrite("0\r\n\r\n"u8.ToArray());
            _out.Writer.TryComplete();
        }

        /// <summary>Drops the connection without a terminating chunk (a crashed or failed-over master).</summary>
        public void Abort()
        {
            _aborted = true;
            _out.Writer.TryComplete();
            network.Socket.Close(0);
            _done.TrySetResult();
        }

        private async Task PumpAsync()
        {
            try
            {
                await foreach (var chunk in _out.Reader.ReadAllAsync())
                {
                    if (chunk is null)
                        break;
                    await network.WriteAsync(chunk);
                    await network.FlushAsync();
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
            {
            }
            finally
            {
                _done.TrySetResult();
            }
        }
    }

    /// <summary>One HTTP/1.1 request read off a keep-alive connection (Content-Length bodies only).</summary>
    private sealed class HttpRequest
    {
        public string Method { get; private init; } = "";

        public string Target { get; private init; } = "";

        public List<(string Name, string Value)> Headers { get; } = [];

        public string Body { get; private set; } = "";

        public string? Header(string name) => Headers.FirstOrDefault(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;

        public static async Task<HttpRequest?> ReadAsync(NetworkStream stream, CancellationToken cancellationToken)
        {
            var head = new List<byte>();
            var one = new byte[1];
            while (head.Count < 4 || !(head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n'))
            {
                if (await stream.ReadAsync(one, cancellationToken) == 0)
                    return null;
                head.Add(one[0]);
            }

            var lines = Encoding.ASCII.GetString(head.ToArray()).Split("\r\n");
            var first = lines[0].Split(' ');
            var request = new HttpRequest { Method = first[0], Target = first[1] };
            foreach (var line in lines.Skip(1).Where(l => l.Length > 0))
            {
                var colon = line.IndexOf(':', StringComparison.Ordinal);
                request.Headers.Add((line[..colon], line[(colon + 1)..].Trim()));
            }

            var length = int.Parse(request.Header("Content-Length") ?? "0", CultureInfo.InvariantCulture);
            var body = new byte[length];
            await stream.ReadExactlyAsync(body, cancellationToken);
            request.Body = Encoding.UTF8.GetString(body);
            return request;
        }
    }
}
