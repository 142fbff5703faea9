using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Longshore.Backends.Docker;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>Job bodies in the taurus shape, and reads of a job's replicas from the API and from the engine.</summary>
public static class Jobs
{
    public static Dictionary<string, object?> Group(string role, int replicas, string command = "sleep 600", object? healthCheck = null) => new()
    {
        ["cluster"] = "local",
        ["environment"] = "test",
        ["role"] = role,
        ["container"] = new Dictionary<string, object?> { ["image"] = TestEngine.Image, ["command"] = new[] { command } },
        ["resources"] = new Dictionary<string, object?> { ["cpu"] = 0.1, ["memory"] = 32 },
        ["replicas"] = replicas,
        ["health_check"] = healthCheck,
    };

    public static object Job(string id, params Dictionary<string, object?>[] groups) => new Dictionary<string, object?> { ["id"] = id, ["tasks"] = groups };

    public static async Task<JsonElement> CreateAsync(this LongshoreServer server, object job)
    {
        using var response = await server.Http.PostAsJsonAsync("/job/new", job);
        var body = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.OK)
            throw new InvalidOperationException($"POST /job/new gave {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    public static async Task<JsonElement> GetJobAsync(this LongshoreServer server, string id) =>
        JsonDocument.Parse(await server.Http.GetStringAsync($"/job/{id}")).RootElement.Clone();

    /// <summary>Running containers of a task group, as the engine reports them.</summary>
    public static async Task<int> RunningAsync(string jobId, string role) =>
        (await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, $"{jobId}-{role}-test", runningOnly: true)).Count;

    public static async Task<int> AllContainersAsync(string jobId, string role) =>
        (await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, $"{jobId}-{role}-test")).Count;

    public static async Task WaitForRunningAsync(string jobId, string role, int count, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (await RunningAsync(jobId, role) != count)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{jobId}-{role}: {await RunningAsync(jobId, role)} running, expected {count}");
            await Task.Delay(200);
        }
    }
}
