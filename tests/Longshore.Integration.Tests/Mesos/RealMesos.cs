using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Longshore.Backends.Mesos;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>
/// The real Mesos clusters <c>scripts/setup-mesos.sh</c> starts (scripts/test.sh passes them on in these variables):
/// a master with HTTP framework authentication and role ACLs, and three masters electing a leader through ZooKeeper.
/// </summary>
public static class RealMesos
{
    public const string SkipReason = "no real Mesos master: scripts/test.sh starts real clusters when given a Mesos installation "
        + "(LONGSHORE_MESOS_PREFIX, or LONGSHORE_MESOS_TARBALL; .ci/run passes the build in ../shared/mesos), "
        + "or set LONGSHORE_TEST_MESOS_MASTER=http://host:5050";

    /// <summary>The single master (with authentication when <see cref="Principal"/> is set).</summary>
    public static Uri? Master { get; } = UriOf("LONGSHORE_TEST_MESOS_MASTER");

    /// <summary>The HTTP addresses of the three masters that elect a leader through ZooKeeper.</summary>
    public static IReadOnlyList<Uri> HaMasters { get; } = (Environment.GetEnvironmentVariable("LONGSHORE_TEST_MESOS_HA_MASTERS") ?? "")
        .Split(',', StringSplitOptions.RemoveEmptyEntries).Select(value => new Uri(value)).ToArray();

    public static string? Principal { get; } = Environment.GetEnvironmentVariable("LONGSHORE_TEST_MESOS_PRINCIPAL") is { Length: > 0 } p ? p : null;

    public static string? SecretFile { get; } = Environment.GetEnvironmentVariable("LONGSHORE_TEST_MESOS_SECRET_FILE") is { Length: > 0 } f ? f : null;

    public static string? Secret { get; } = SecretFile is not null ? File.ReadAllText(SecretFile).Trim() : null;

    public static string Image { get; } = Environment.GetEnvironmentVariable("LONGSHORE_TEST_MESOS_IMAGE") ?? "busybox";

    /// <summary>The folder holding each started process's pid file and start script (the failover test kills and restarts masters).</summary>
    public static string? Control { get; } = Environment.GetEnvironmentVariable("LONGSHORE_TEST_MESOS_CONTROL") is { Length: > 0 } c ? c : null;

    /// <summary>Backend options for the single master: a framework name of its own, the cluster's credentials.</summary>
    public static MesosBackendOptions Configure(MesosBackendOptions options) => options with
    {
        FrameworkName = "longshore-test-" + Guid.NewGuid().ToString("N")[..8],
        Principal = Principal,
        Secret = Secret,
        // A test's framework, and any task it leaves, is removed soon after the test lets go of it.
        FailoverTimeout = TimeSpan.FromMinutes(2),
    };

    /// <summary>GET on a master or agent endpoint, following a non-leader's redirect.</summary>
    public static async Task<JsonElement> GetAsync(Uri root, string path)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        if (Principal is not null)
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Principal}:{Secret}")));
        return JsonDocument.Parse(await http.GetStringAsync(new Uri(root, path))).RootElement.Clone();
    }

    /// <summary>A call of the master's v1 operator API (<c>POST /api/v1</c>), e.g. <c>GET_TASKS</c>, whose tasks carry their resources whole.</summary>
    public static async Task<JsonElement> OperatorAsync(Uri master, string type)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes($$"""{"type":"{{type}}"}"""));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(master, "api/v1")) { Content = content };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        using var response = await http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    /// <summary>The leading master of <see cref="HaMasters"/>, from the first that answers its <c>/state</c>.</summary>
    public static async Task<Uri> HaLeaderAsync()
    {
        foreach (var master in HaMasters)
        {
            try
            {
                var state = await GetAsync(master, "master/state");
                if (state.TryGetProperty("leader", out var leader) && leader.GetString() is { } pid)
                    return new Uri("http://" + pid[(pid.IndexOf('@', StringComparison.Ordinal) + 1)..] + "/");
            }
            catch (HttpRequestException)
            {
            }
        }

        throw new InvalidOperationException("no HA master answers with a leader");
    }

    /// <summary>SIGKILL to the master on <paramref name="master"/>'s port, as started by setup-mesos.sh.</summary>
    public static async Task KillMasterAsync(Uri master)
    {
        var pid = int.Parse(await File.ReadAllTextAsync(Path.Combine(Control!, $"master-{master.Port}.pid")), System.Globalization.CultureInfo.InvariantCulture);
        using var process = Process.GetProcessById(pid);
        process.Kill();
        await process.WaitForExitAsync();
    }

    /// <summary>Starts a killed master again with the script setup-mesos.sh wrote, and waits until it answers.</summary>
    public static async Task RestartMasterAsync(Uri master)
    {
        using (var start = Process.Start("bash", [Path.Combine(Control!, $"master-{master.Port}.sh")]))
            await start.WaitForExitAsync();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        await Eventually.WaitUntilAsync(async () =>
        {
            try
            {
                using var response = await http.GetAsync(new Uri(master, "health"));
                return response.IsSuccessStatusCode;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(30), () => $"master {master} did not come back");
    }

    private static Uri? UriOf(string variable) => Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value ? new Uri(value) : null;
}

/// <summary>A fact that runs only when a real master is given (xunit 2 has no dynamic skip).</summary>
public sealed class RealMesosMasterFactAttribute : FactAttribute
{
    public RealMesosMasterFactAttribute()
    {
        if (RealMesos.Master is null)
            Skip = RealMesos.SkipReason;
    }
}

/// <summary>A fact that needs the authenticating master with its ACLs and reservation, as setup-mesos.sh starts it.</summary>
public sealed class RealMesosAuthFactAttribute : FactAttribute
{
    public RealMesosAuthFactAttribute()
    {
        if (RealMesos.Master is null)
            Skip = RealMesos.SkipReason;
        else if (RealMesos.Principal is null)
            Skip = "the real master was not started by scripts/setup-mesos.sh (no LONGSHORE_TEST_MESOS_PRINCIPAL): it has no credentials or ACLs to test";
    }
}

/// <summary>A fact that needs the three ZooKeeper-elected masters setup-mesos.sh starts.</summary>
public sealed class RealMesosFailoverFactAttribute : FactAttribute
{
    public RealMesosFailoverFactAttribute()
    {
        if (RealMesos.HaMasters.Count < 3 || RealMesos.Control is null)
            Skip = RealMesos.SkipReason.Replace("or set LONGSHORE_TEST_MESOS_MASTER=http://host:5050", "(three masters with ZooKeeper and their control folder are needed)", StringComparison.Ordinal);
    }
}
