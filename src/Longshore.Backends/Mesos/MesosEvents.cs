using System.Globalization;
using System.Text.Json;
using Longshore.Core.Placement;

namespace Longshore.Backends.Mesos;

/// <summary>One event of the v1 scheduler stream, reduced to what the backend uses.</summary>
public abstract record MesosEvent(string Type)
{
    /// <summary>Parses one RecordIO record (JSON encoding of <c>mesos.v1.scheduler.Event</c>).</summary>
    public static MesosEvent Parse(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        using var document = JsonDocument.ParseValue(ref reader);
        var root = document.RootElement;
        var type = root.TryGetProperty("type", out var t) ? t.GetString() ?? "UNKNOWN" : "UNKNOWN";
        return type switch
        {
            "SUBSCRIBED" => new SubscribedEvent(
                root.GetProperty("subscribed").GetProperty("framework_id").GetProperty("value").GetString()!,
                root.GetProperty("subscribed").TryGetProperty("heartbeat_interval_seconds", out var hb) ? hb.GetDouble() : 15),
            "OFFERS" => new OffersEvent(root.GetProperty("offers").TryGetProperty("offers", out var offers)
                ? offers.EnumerateArray().Select(MesosOffer.Parse).ToArray()
                : []),
            "RESCIND" => new RescindEvent(root.GetProperty("rescind").GetProperty("offer_id").GetProperty("value").GetString()!),
            "UPDATE" => new UpdateEvent(MesosTaskStatus.Parse(root.GetProperty("update").GetProperty("status"))),
            "HEARTBEAT" => new HeartbeatEvent(),
            "ERROR" => new ErrorEvent(root.GetProperty("error").GetProperty("message").GetString() ?? string.Empty),
            "FAILURE" => new FailureEvent(root.TryGetProperty("failure", out var f) && f.TryGetProperty("agent_id", out var a)
                ? a.GetProperty("value").GetString()
                : null),
            _ => new OtherEvent(type),
        };
    }
}

public sealed record SubscribedEvent(string FrameworkId, double HeartbeatIntervalSeconds) : MesosEvent("SUBSCRIBED");

public sealed record OffersEvent(IReadOnlyList<MesosOffer> Offers) : MesosEvent("OFFERS");

public sealed record RescindEvent(string OfferId) : MesosEvent("RESCIND");

public sealed record UpdateEvent(MesosTaskStatus Status) : MesosEvent("UPDATE");

public sealed record HeartbeatEvent() : MesosEvent("HEARTBEAT");

public sealed record ErrorEvent(string Message) : MesosEvent("ERROR");

public sealed record FailureEvent(string? AgentId) : MesosEvent("FAILURE");

public sealed record OtherEvent(string EventType) : MesosEvent(EventType);

/// <summary>
/// An offer: its cpus and mem (unreserved and reserved for the offer's role), its unreserved ports, and its agent's
/// attributes as text.
/// </summary>
public sealed record MesosOffer(string Id, string AgentId, string Hostname, Uri? AgentUrl, double Cpus, double Mem,
    IReadOnlyDictionary<string, string> Attributes)
{
    public IReadOnlyList<PortRange> Ports { get; init; } = [];

    /// <summary>The offered <c>cpus</c> and <c>mem</c> resources one by one, each with what a task must repeat to use it.</summary>
    public IReadOnlyList<OfferedScalar> Scalars { get; init; } = [];

    /// <summary>The role the offer is allocated to (<c>allocation_info.role</c>), when the master says.</summary>
    public string? Role { get; init; }

    public static MesosOffer Parse(JsonElement offer)
    {
        double cpus = 0, mem = 0;
        var ports = new List<PortRange>();
        var scalars = new List<OfferedScalar>();
        if (offer.TryGetProperty("resources", out var resources))
        {
            foreach (var resource in resources.EnumerateArray())
            {
                // Persistent volumes, shared and revocable resources are not for a task's cpus and mem.
                if (resource.TryGetProperty("disk", out _) || resource.TryGetProperty("shared", out _) || resource.TryGetProperty("revocable", out _))
                    continue;
                var reserved = OfferedScalar.IsReserved(resource);
                if (resource.GetProperty("name").GetString() == "ports" && resource.TryGetProperty("ranges", out var ranges)
                    && ranges.TryGetProperty("range", out var range))
                {
                    // Reserved ports are left alone: a task's port picks are made from the unreserved ranges only.
                    if (reserved)
                        continue;
                    foreach (var span in range.EnumerateArray())
                        ports.Add(new PortRange(span.GetProperty("begin").GetInt32(), span.GetProperty("end").GetInt32()));
                    continue;
                }

                if (!resource.TryGetProperty("scalar", out var scalar))
                    continue;
                var name = resource.GetProperty("name").GetString();
                if (name is not ("cpus" or "mem"))
                    continue;
                var value = scalar.GetProperty("value").GetDouble();
                if (name == "cpus")
                    cpus += value;
                else
                    mem += value;
                scalars.Add(OfferedScalar.From(resource, value));
            }
        }

        var attributes = new Dictionary<string, string>(StringComparer.Ordinal);
        if (offer.TryGetProperty("attributes", out var attrs))
        {
            foreach (var attribute in attrs.EnumerateArray())
            {
                var value = AttributeText(attribute);
                if (value is not null)
                    attributes[attribute.GetProperty("name").GetString()!] = value;
            }
        }

        return new MesosOffer(
            offer.GetProperty("id").GetProperty("value").GetString()!,
            offer.GetProperty("agent_id").GetProperty("value").GetString()!,
            offer.GetProperty("hostname").GetString()!,
            offer.TryGetProperty("url", out var url) ? AgentUri(url) : null,
            cpus,
            mem,
            attributes)
        {
            Ports = ports,
            Scalars = scalars,
            Role = offer.TryGetProperty("allocation_info", out var allocation) && allocation.TryGetProperty("role", out var role) ? role.GetString() : null,
        };
    }

    private static string? AttributeText(JsonElement attribute) => attribute.GetProperty("type").GetString() switch
    {
        "TEXT" => attribute.GetProperty("text").GetProperty("value").GetString(),
        "SCALAR" => attribute.GetProperty("scalar").GetProperty("value").GetDouble().ToString(CultureInfo.InvariantCulture),
        "SET" => string.Join(',', attribute.GetProperty("set").GetProperty("item").EnumerateArray().Select(i => i.GetString())),
        "RANGES" => string.Join(',', attribute.GetProperty("ranges").GetProperty("range").EnumerateArray()
            .Select(r => $"[{r.GetProperty("begin").GetInt64()}-{r.GetProperty("end").GetInt64()}]")),
        _ => null,
    };

    private static Uri? AgentUri(JsonElement url)
    {
        var scheme = url.TryGetProperty("scheme", out var s) ? s.GetString() : "http";
        var address = url.GetProperty("address");
        var host = address.TryGetProperty("hostname", out var h) ? h.GetString() : address.GetProperty("ip").GetString();
        var port = address.GetProperty("port").GetInt32();
        return Uri.TryCreate(string.Create(CultureInfo.InvariantCulture, $"{scheme}://{host}:{port}/"), UriKind.Absolute, out var uri) ? uri : null;
    }
}

/// <summary>A task status as the master sends it. <see cref="Uuid"/> is set when the update must be acknowledged.</summary>
public sealed record MesosTaskStatus(string TaskId, string State, string? Source, string? Reason, string? Message, string? AgentId,
    string? Uuid, double? Timestamp, string? ContainerId)
{
    public static MesosTaskStatus Parse(JsonElement status) => new(
        status.GetProperty("task_id").GetProperty("value").GetString()!,
        status.GetProperty("state").GetString()!,
        Optional(status, "source"),
        Optional(status, "reason"),
        Optional(status, "message"),
        status.TryGetProperty("agent_id", out var agent) ? agent.GetProperty("value").GetString() : null,
        Optional(status, "uuid"),
        status.TryGetProperty("timestamp", out var ts) ? ts.GetDouble() : null,
        status.TryGetProperty("container_status", out var cs) && cs.TryGetProperty("container_id", out var cid)
            ? cid.GetProperty("value").GetString()
            : null);

    private static string? Optional(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) ? value.GetString() : null;
}

/// <summary>The master's <c>/master/slaves</c> answer.</summary>
public static class MesosAgents
{
    /// <summary>
    /// The files API address of the agent on <paramref name="hostname"/>: from its <c>pid</c>
    /// (<c>slave(1)@10.0.0.5:5051</c>), which is how the master reaches it.
    /// </summary>
    public static Uri? UrlOf(JsonElement slaves, string hostname)
    {
        foreach (var slave in slaves.GetProperty("slaves").EnumerateArray())
        {
            if (slave.GetProperty("hostname").GetString() != hostname || slave.GetProperty("pid").GetString() is not { } pid)
                continue;
            var at = pid.LastIndexOf('@');
            return at >= 0 && Uri.TryCreate("http://" + pid[(at + 1)..] + "/", UriKind.Absolute, out var uri) ? uri : null;
        }

        return null;
    }
}
