namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>Queue definitions in the Hippo shape: a small busybox task template plus a queue block of the given type.</summary>
public static class QueueDefinitions
{
    public static Dictionary<string, object> Create(string id, string cmd, string type, object settings, Dictionary<string, object>? block = null)
    {
        var queue = new Dictionary<string, object>(block ?? []) { ["type"] = type, ["name"] = id, [type] = settings };
        return new Dictionary<string, object>
        {
            ["id"] = id,
            ["cmd"] = cmd,
            ["mem"] = 16,
            ["cpus"] = 0.1,
            ["container"] = new Dictionary<string, object> { ["docker"] = new Dictionary<string, object> { ["image"] = TestEngine.Image } },
            ["queue"] = queue,
        };
    }
}
