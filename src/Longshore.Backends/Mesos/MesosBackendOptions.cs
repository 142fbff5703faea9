using System.Globalization;
using System.Text;

namespace Longshore.Backends.Mesos;

/// <summary>How the Mesos backend reaches the cluster and presents itself as a framework.</summary>
public sealed record MesosBackendOptions
{
    /// <summary>Master addresses (<c>http://host:5050</c>), tried in turn; a non-leading master redirects to the leader.</summary>
    public IReadOnlyList<Uri> Masters { get; init; } = [];

    public string FrameworkName { get; init; } = "longshore";

    /// <summary>
    /// Roles the framework subscribes with (MULTI_ROLE). Default <c>*</c>. Offers come per role; a task takes its
    /// resources from one offer's role.
    /// </summary>
    public IReadOnlyList<string> Roles { get; init; } = ["*"];

    /// <summary>User tasks run as on the agents. Default <c>root</c>.</summary>
    public string User { get; init; } = "root";

    /// <summary>Principal for HTTP basic authentication and framework_info; null sends none.</summary>
    public string? Principal { get; init; }

    /// <summary>Secret for HTTP basic authentication; never logged (left out of <see cref="ToString"/>).</summary>
    public string? Secret { get; init; }

    /// <summary>Where <see cref="Secret"/> was read from, when it came from a file (checked by <see cref="Validate"/>).</summary>
    public string? SecretFile { get; init; }

    /// <summary>How long the master keeps the framework's tasks after the scheduler disconnects. Default one week.</summary>
    public TimeSpan FailoverTimeout { get; init; } = TimeSpan.FromDays(7);

    /// <summary>Seconds a declined (or partly used) offer's agent is not offered again. Default 5.</summary>
    public double RefuseSeconds { get; init; } = 5;

    /// <summary>File that keeps the framework id across restarts (so tasks are found again). Null keeps it in memory only.</summary>
    public string? FrameworkIdFile { get; init; }

    /// <summary>Heartbeats that may be missed before the stream is taken for dead and the backend resubscribes.</summary>
    public int MissedHeartbeats { get; init; } = 3;

    /// <summary>Longest wait between reconnection attempts (the wait doubles from 0.5 s).</summary>
    public TimeSpan ReconnectBackoffCap { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Every failing setting, named as its command-line option.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (Masters.Count == 0)
            errors.Add("mesos-master: at least one master address is required with --engine mesos, e.g. http://mesos-master:5050");
        if (Masters.Any(master => master.Scheme == "zk"))
        {
            // No maintained ZooKeeper client for .NET is available to us, and a hand-rolled one is not worth its risk:
            // the masters' HTTP addresses find the leader as well (a non-leader answers 307 to it).
            errors.Add("mesos-master: zk:// discovery is not supported; list every master's HTTP address instead, "
                + "e.g. http://mesos-1:5050,http://mesos-2:5050,http://mesos-3:5050 (a master that does not lead redirects to the one that does)");
        }

        foreach (var master in Masters.Where(master => master.Scheme != "zk"))
        {
            if (master.Scheme is not ("http" or "https") || !string.IsNullOrEmpty(master.Query))
                errors.Add($"mesos-master: '{master}' must be an http:// or https:// address such as http://mesos-master:5050 (zk:// is not supported)");
        }

        if (Roles.Count == 0)
            errors.Add("mesos-role: at least one role is required, e.g. * or batch");
        foreach (var role in Roles)
        {
            if (string.IsNullOrWhiteSpace(role) || role.Any(char.IsWhiteSpace))
                errors.Add($"mesos-role: each role must be a name without spaces such as * or batch, got '{role}'");
        }

        if (Roles.Distinct(StringComparer.Ordinal).Count() != Roles.Count)
            errors.Add($"mesos-role: a role is listed twice in '{string.Join(',', Roles)}'");
        if (string.IsNullOrWhiteSpace(FrameworkName))
            errors.Add("mesos-framework-name: must not be empty");
        if (FailoverTimeout <= TimeSpan.Zero || FailoverTimeout > TimeSpan.FromDays(365))
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"mesos-failover-timeout: must be between 0 and 31536000 seconds (exclusive of 0), got {FailoverTimeout.TotalSeconds}"));
        if (!double.IsFinite(RefuseSeconds) || RefuseSeconds < 0 || RefuseSeconds > 86400)
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"mesos-refuse-seconds: must be between 0 and 86400, got {RefuseSeconds}"));
        if (SecretFile is not null && !File.Exists(SecretFile))
            errors.Add($"mesos-secret-file: '{SecretFile}' does not exist");
        if (Secret is not null && Principal is null)
            errors.Add("mesos-secret: a secret needs a principal (--mesos-principal)");
        if (MissedHeartbeats < 1)
            errors.Add($"mesos-missed-heartbeats: must be at least 1, got {MissedHeartbeats}");
        return errors;
    }

    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append(CultureInfo.InvariantCulture, $"Masters = [{string.Join(", ", Masters)}], FrameworkName = {FrameworkName}, Roles = [{string.Join(", ", Roles)}], Principal = {Principal}, ");
        builder.Append(CultureInfo.InvariantCulture, $"Secret = {(Secret is null ? "none" : "***")}, FailoverTimeout = {FailoverTimeout}, RefuseSeconds = {RefuseSeconds}");
        return true;
    }
}
