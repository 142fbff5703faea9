using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>What the per-source queue tests ask a server about a queue's runs.</summary>
public static class QueueRuns
{
    /// <summary>Waits until at least <paramref name="count"/> runs of the queue have ended; returns the ended ones.</summary>
    public static async Task<List<JsonElement>> WaitForEndedAsync(this LongshoreServer server, string id, int count, TimeSpan? timeout = null)
    {
        List<JsonElement> runs = [];
        await server.WaitUntilAsync(async () =>
        {
            runs = await server.RunsAsync(id);
            return runs.Count(r => TestStates.IsTerminal(r.GetProperty("mesos_state").GetString()!)) >= count;
        }, timeout ?? TimeSpan.FromSeconds(60));
        return runs.Where(r => TestStates.IsTerminal(r.GetProperty("mesos_state").GetString()!)).ToList();
    }

    public static Task WaitUntilAsync(this LongshoreServer server, Func<Task<bool>> condition, TimeSpan? timeout = null) =>
        Eventually.WaitUntilAsync(condition, timeout ?? TimeSpan.FromSeconds(30), () => server.Output);

    /// <summary>What each run's container printed.</summary>
    public static async Task<List<string>> StdoutsAsync(this LongshoreServer server, IEnumerable<JsonElement> runs)
    {
        var outputs = new List<string>();
        foreach (var run in runs)
            outputs.Add(JsonDocument.Parse(await server.Http.GetStringAsync($"/tasks/{run.GetProperty("mesos_id").GetString()}/logs/")).RootElement.GetProperty("stdout").GetString()!);
        return outputs;
    }

    /// <summary>Posts a queue with one setting under <c>queue.&lt;type&gt;</c> replaced: it must be refused with 400 naming <paramref name="expected"/>, and not stored.</summary>
    public static async Task AssertRefusedAsync(this LongshoreServer server, Dictionary<string, object> definition, string type, string setting, string value, string expected)
    {
        ((Dictionary<string, string>)((Dictionary<string, object>)definition["queue"])[type])[setting] = value;

        using var response = await server.Http.PostAsJsonAsync("/queues/", definition);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expected, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await server.Http.GetAsync($"/queues/{definition["id"]}/")).StatusCode);
    }
}
