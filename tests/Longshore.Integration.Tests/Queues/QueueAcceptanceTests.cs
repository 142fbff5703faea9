using System.Net.Http.Json;
using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Queues;

/// <summary>
/// The acceptance runs every queue source must pass, against its real server and the real engine: 500 messages in
/// batches of 7 become 72 tasks carrying every payload once; a queue paused and resumed; and a <c>kill -9</c> of
/// Longshore in the middle of 300 messages loses none. One suite, inherited per source.
/// </summary>
public abstract class QueueAcceptanceTests : IAsyncLifetime
{
    private LongshoreServer _server = null!;

    /// <summary>Unique per test: names the queue and whatever the source needs (list, table, stream, bucket).</summary>
    protected string Id { get; } = Families.New("accept");

    protected abstract string Type { get; }

    /// <summary>Creates what the source reads from (a table, a stream, …), empty.</summary>
    protected virtual Task PrepareAsync() => Task.CompletedTask;

    protected virtual Task CleanupAsync() => Task.CompletedTask;

    /// <summary>The settings under <c>queue.&lt;type&gt;</c>.</summary>
    protected abstract Dictionary<string, string> Settings();

    protected abstract Task PushAsync(IReadOnlyList<string> payloads);

    /// <summary>True once the source holds nothing unsettled for the queue (nothing waiting, nothing in flight).</summary>
    protected abstract Task<bool> DrainedAsync();

    /// <summary>The message a task's payload part stands for (the source may wrap it, e.g. a row as JSON).</summary>
    protected virtual string MessageOf(string payloadPart) => payloadPart;

    public async Task InitializeAsync()
    {
        await PrepareAsync();
        _server = await LongshoreServer.StartAsync("--retry-backoff-base", "0.2", "--capacity", "24");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await CleanupAsync();
    }

    private static List<string> Messages(int count, string prefix) =>
        Enumerable.Range(1, count).Select(i => $"{prefix}-{i:D4} \"q\"; $(x)").ToList();

    private Dictionary<string, object> Definition(string cmd, int batchSize, string status = "ENABLED")
    {
        var definition = QueueDefinitions.Create(Id, cmd, Type, Settings(), new() { ["batch_size"] = batchSize, ["frequency_seconds"] = 1, ["status"] = status });
        definition["max_concurrent"] = 24;
        return definition;
    }

    [Fact]
    public async Task FiveHundredMessages_InBatchesOfSeven_PausedThenResumed_Become72Tasks_CarryingEveryPayloadOnce()
    {
        var messages = Messages(500, "m");
        (await _server.Http.PostAsJsonAsync("/queues/", Definition("printf '%s' $HIPPO_DATA", batchSize: 7, status: "DISABLED"))).EnsureSuccessStatusCode();
        await PushAsync(messages);
        await Task.Delay(3000);
        Assert.Empty(await _server.RunsAsync(Id));

        (await _server.Http.GetAsync($"/queues/{Id}/enable/")).EnsureSuccessStatusCode();
        var runs = await WaitForFinishedAsync(messages.Count, TimeSpan.FromSeconds(240));

        var batches = runs.Select(r => r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!.Split('|')).ToList();
        Assert.Equal(72, batches.Count);
        Assert.Equal(71, batches.Count(b => b.Length == 7));
        Assert.Equal(1, batches.Count(b => b.Length == 3));
        Assert.Equal(messages.Order(StringComparer.Ordinal), batches.SelectMany(b => b).Select(MessageOf).Order(StringComparer.Ordinal));
        // The container got the payload intact: its output is exactly the joined batch.
        var sample = runs[0];
        var logs = JsonDocument.Parse(await _server.Http.GetStringAsync($"/tasks/{sample.GetProperty("mesos_id").GetString()}/logs/")).RootElement;
        Assert.Equal(sample.GetProperty("env").GetProperty("HIPPO_DATA").GetString(), logs.GetProperty("stdout").GetString());
        await Eventually.WaitUntilAsync(DrainedAsync, TimeSpan.FromSeconds(30), () => _server.Output);
    }

    [Fact]
    public async Task KillNine_InTheMiddleOf300Messages_EveryMessageRuns_NoneIsLost()
    {
        var messages = Messages(300, "k");
        await PushAsync(messages);
        (await _server.Http.PostAsJsonAsync("/queues/", Definition("sleep 1; printf '%s' $HIPPO_DATA", batchSize: 10))).EnsureSuccessStatusCode();
        await Eventually.WaitUntilAsync(async () => (await FinishedAsync()).Count >= 4, TimeSpan.FromSeconds(120), () => _server.Output);

        await _server.KillHardAsync();
        await Task.Delay(2000);
        await _server.StartAgainAsync();
        var runs = await WaitForFinishedAsync(messages.Count, TimeSpan.FromSeconds(300));

        // A run the crash caught mid-launch ends TASK_LOST and is retried: still one finished run per batch.
        var finished = runs.SelectMany(r => r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!.Split('|')).Select(MessageOf).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(messages.Order(StringComparer.Ordinal), finished);
        await Eventually.WaitUntilAsync(DrainedAsync, TimeSpan.FromSeconds(30), () => _server.Output);
    }

    private async Task<List<JsonElement>> FinishedAsync() =>
        (await _server.RunsAsync(Id)).Where(r => r.GetProperty("mesos_state").GetString() == "TASK_FINISHED").ToList();

    /// <summary>Waits until the finished runs carry <paramref name="messages"/> messages in all, then a little longer for strays.</summary>
    private async Task<List<JsonElement>> WaitForFinishedAsync(int messages, TimeSpan timeout)
    {
        static int Count(IEnumerable<JsonElement> runs) => runs.Sum(r => r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!.Split('|').Length);
        await Eventually.WaitUntilAsync(async () => Count(await FinishedAsync()) >= messages, timeout, () => _server.Output);
        await Task.Delay(2000);
        return await FinishedAsync();
    }
}
