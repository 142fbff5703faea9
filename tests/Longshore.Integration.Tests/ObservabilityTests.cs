using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;
using StackExchange.Redis;

namespace Longshore.Integration.Tests;

/// <summary>
/// What an operator sees of a queue on the real server and engine: a message pushed to a Redis list polled only every
/// minute is taken at once (the poll waits for it), and its steps show in /metrics and in the OTLP traces the server
/// sends to a collector (here an HTTP listener in the test).
/// </summary>
public sealed class ObservabilityTests : IAsyncLifetime, IDisposable
{
    private static readonly string RedisHost = Environment.GetEnvironmentVariable("LONGSHORE_TEST_REDIS") ?? "127.0.0.1:6379";
    private readonly HttpListener _collector = new();
    private readonly List<byte[]> _exports = [];
    private ConnectionMultiplexer _redis = null!;
    private LongshoreServer _server = null!;
    private Task _collecting = Task.CompletedTask;

    public async Task InitializeAsync()
    {
        var port = FreePort();
        _collector.Prefixes.Add($"http://127.0.0.1:{port}/");
        _collector.Start();
        _collecting = Task.Run(CollectAsync);
        _redis = await ConnectionMultiplexer.ConnectAsync(RedisHost);
        _server = await LongshoreServer.StartAsync(new Dictionary<string, string?>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = $"http://127.0.0.1:{port}",
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
        });
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await _redis.DisposeAsync();
        _collector.Stop();
        await _collecting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public void Dispose() => _collector.Close();

    [Fact]
    public async Task RedisQueuePolledEveryMinute_TakesAPushedMessageAtOnce_AndMetricsAndTracesShowEveryStep()
    {
        var id = Families.New("observed");
        var list = "list-" + id;
        (await _server.Http.PostAsJsonAsync("/queues/", QueueDefinitions.Create(id, "echo $HIPPO_DATA", "redis",
            new Dictionary<string, string> { ["host"] = RedisHost.Split(':')[0], ["port"] = RedisHost.Split(':')[1], ["name"] = list },
            new() { ["frequency_seconds"] = 60 }))).EnsureSuccessStatusCode();
        // The queue has been polled once (and found nothing): without waiting, the next look would be a minute away.
        await Eventually.WaitUntilAsync(async () => (await QueueAsync(id)).GetProperty("stats").GetProperty("last_poll_at").ValueKind != JsonValueKind.Null,
            TimeSpan.FromSeconds(30));
        await Task.Delay(500);

        var pushed = Stopwatch.StartNew();
        var pushedAt = DateTimeOffset.UtcNow;
        await _redis.GetDatabase().ListRightPushAsync(list, "hello");
        await Eventually.WaitUntilAsync(async () => (await _server.RunsAsync(id)).Count == 1, TimeSpan.FromSeconds(60));
        var recorded = pushed.Elapsed;
        var run = await _server.WaitForEndAsync((await _server.RunsAsync(id))[0].GetProperty("mesos_id").GetString()!);
        var runId = run.GetProperty("mesos_id").GetString()!;
        Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString());
        // Taken as it came: a minute's poll interval would have left it in the list for up to 60 s.
        Assert.True(recorded < TimeSpan.FromSeconds(15), $"the message became a task {recorded.TotalSeconds:0.0} s after the push");
        // The run is created when the message arrived, not when the poll that waited for it began (same clock, milliseconds).
        var created = run.GetProperty("created_at").GetDateTimeOffset();
        Assert.True(created.ToUnixTimeMilliseconds() >= pushedAt.ToUnixTimeMilliseconds(), $"created {created:O}, pushed {pushedAt:O}");
        await Eventually.WaitUntilAsync(async () => await _redis.GetDatabase().ListLengthAsync($"longshore:processing:{id}") == 0, TimeSpan.FromSeconds(30));

        string metrics = string.Empty;
        await Eventually.WaitUntilAsync(async () =>
        {
            metrics = await _server.Http.GetStringAsync("/metrics");
            return Value(metrics, $"longshore_queue_messages_acknowledged_total{{queue=\"{id}\"}}") == 1;
        }, TimeSpan.FromSeconds(30), () => metrics);
        Assert.Equal(1, Value(metrics, $"longshore_queue_messages_received_total{{queue=\"{id}\"}}"));
        Assert.Equal(1, Value(metrics, $"longshore_queue_tasks_created_total{{queue=\"{id}\"}}"));
        foreach (var step in (string[])["recorded", "staged", "running", "ended"])
            Assert.Equal(1, Value(metrics, $"longshore_queue_step_seconds_count{{queue=\"{id}\",step=\"{step}\"}}"));
        Assert.Equal(0, Value(metrics, $"longshore_queue_backlog{{queue=\"{id}\"}}"));
        Assert.True(Value(metrics, "longshore_launch_seconds_count{engine=\"docker\"}") >= 1);
        Assert.True(Value(metrics, "longshore_scheduler_free_capacity") >= 1);

        // The trace of the message reached the collector: every step, each naming the run.
        var exported = string.Empty;
        await Eventually.WaitUntilAsync(() =>
        {
            lock (_exports)
                exported = string.Join('\n', _exports.Select(Encoding.UTF8.GetString));
            return Task.FromResult(exported.Contains("longshore.queue.settle", StringComparison.Ordinal));
        }, TimeSpan.FromSeconds(30), () => $"{_exports.Count} exports");
        foreach (var span in (string[])["longshore.queue.receive", "longshore.task.wait", "longshore.task.launch", "longshore.task.run"])
            Assert.Contains(span, exported, StringComparison.Ordinal);
        Assert.Contains(runId, exported, StringComparison.Ordinal);
    }

    private async Task<JsonElement> QueueAsync(string id) => JsonDocument.Parse(await _server.Http.GetStringAsync($"/queues/{id}/")).RootElement;

    /// <summary>The value of one series in Prometheus's text format; NaN when absent.</summary>
    private static double Value(string metrics, string series) =>
        metrics.Split('\n').FirstOrDefault(line => line.StartsWith(series + " ", StringComparison.Ordinal)) is { } line
            ? double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture)
            : double.NaN;

    /// <summary>An OTLP/HTTP collector's one route: keeps each export's protobuf body (strings in it are plain UTF-8).</summary>
    private async Task CollectAsync()
    {
        while (_collector.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _collector.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            if (context.Request.Url?.AbsolutePath == "/v1/traces")
            {
                lock (_exports)
                    _exports.Add(body.ToArray());
            }

            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/x-protobuf";
            context.Response.Close();
        }
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
