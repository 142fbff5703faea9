using System.Text.Json;
using System.Text.Json.Nodes;

namespace Longshore.Backends.Mesos;

/// <summary>
/// One offered <c>cpus</c> or <c>mem</c> resource: its amount, and the resource without its amount and allocation
/// (<see cref="Identity"/>: name, type, <c>role</c>, <c>reservation</c> or <c>reservations</c>), which a task must repeat
/// for the master to take the amount from this resource. A static reservation for <c>batch</c> is offered as
/// <c>"role":"batch"</c> (recorded in 13-reserved), an unreserved resource as <c>"role":"*"</c>.
/// </summary>
public sealed record OfferedScalar(string Name, double Amount, JsonObject Identity)
{
    /// <summary>Reserved for a role (statically or dynamically) rather than free for any role.</summary>
    public bool Reserved => IsReserved(Identity);

    public static OfferedScalar From(JsonElement resource, double amount)
    {
        var identity = new JsonObject();
        foreach (var property in resource.EnumerateObject())
        {
            if (property.Name is not ("scalar" or "allocation_info"))
                identity[property.Name] = JsonNode.Parse(property.Value.GetRawText());
        }

        return new OfferedScalar(resource.GetProperty("name").GetString()!, amount, identity);
    }

    public static bool IsReserved(JsonElement resource) =>
        (resource.TryGetProperty("role", out var role) && role.GetString() != "*")
        || resource.TryGetProperty("reservation", out _)
        || (resource.TryGetProperty("reservations", out var list) && list.GetArrayLength() > 0);

    private static bool IsReserved(JsonObject resource) =>
        (resource["role"] is { } role && role.GetValue<string>() != "*")
        || resource.ContainsKey("reservation")
        || (resource["reservations"] is JsonArray list && list.Count > 0);
}

/// <summary>
/// The cpus and mem of the offers one ACCEPT takes, handed out task by task: reserved resources first (only this
/// framework's role can use them), then unreserved ones. A task's share may span several resources; each is given
/// with its identity so the master takes it from the right reservation.
/// </summary>
public sealed class OfferedResources
{
    // Mesos keeps scalars in fixed point with three decimals.
    private const double Epsilon = 0.0005;
    private readonly List<Piece> _pieces;

    public OfferedResources(IEnumerable<OfferedScalar> scalars) =>
        _pieces = [.. scalars.OrderByDescending(s => s.Reserved).Select(s => new Piece(s) { Left = s.Amount })];

    /// <summary>
    /// Resources for <paramref name="amount"/> of <paramref name="name"/>; when the offers hold less (they should not: the
    /// matcher planned within them), the rest is asked for as unreserved and the master judges it.
    /// </summary>
    public IEnumerable<JsonObject> Take(string name, double amount)
    {
        var wanted = Math.Round(amount, 3);
        var taken = new List<JsonObject>();
        foreach (var piece in _pieces.Where(p => p.Scalar.Name == name))
        {
            if (wanted < Epsilon)
                break;
            var share = Math.Round(Math.Min(piece.Left, wanted), 3);
            if (share < Epsilon)
                continue;
            piece.Left = Math.Round(piece.Left - share, 3);
            wanted = Math.Round(wanted - share, 3);
            taken.Add(With(piece.Scalar.Identity, share));
        }

        if (wanted >= Epsilon)
            taken.Add(MesosCalls.Scalar(name, wanted));
        return taken;
    }

    private static JsonObject With(JsonObject identity, double value)
    {
        var resource = (JsonObject)identity.DeepClone();
        resource["scalar"] = new JsonObject { ["value"] = value };
        return resource;
    }

    private sealed class Piece(OfferedScalar scalar)
    {
        public OfferedScalar Scalar { get; } = scalar;

        public double Left { get; set; }
    }
}
