using System.Globalization;

namespace Longshore.Core.Tasks;

/// <summary>How a run learns the host ports its engine picked for it: the same variables on every engine (Marathon's names).</summary>
public static class TaskPorts
{
    /// <summary>Most host ports one task may ask for.</summary>
    public const int Max = 16;

    /// <summary>Adds <c>PORT0</c>… per port, <c>PORT</c> (the first) and <c>PORTS</c> (all, comma-separated) to <paramref name="env"/>.</summary>
    public static void AddVariables(IDictionary<string, string> env, IReadOnlyList<int> ports)
    {
        if (ports.Count == 0)
            return;
        for (var i = 0; i < ports.Count; i++)
            env["PORT" + i.ToString(CultureInfo.InvariantCulture)] = ports[i].ToString(CultureInfo.InvariantCulture);
        env["PORT"] = ports[0].ToString(CultureInfo.InvariantCulture);
        env["PORTS"] = string.Join(',', ports.Select(port => port.ToString(CultureInfo.InvariantCulture)));
    }
}
