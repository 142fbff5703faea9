using System.Net.Http.Json;
using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Longshore.Integration.Tests;

/// <summary>The nats source against a real nats-server with JetStream and the real engine.</summary>
#pragma warning disable CA1001 // Disposed in DisposeAsync, which xunit calls.
public sealed class NatsQueueTests : IAsyncLifetime
#pragma warning restore CA1001
{
    private static readonly string Url = Environment.GetEnvironmentVariable("LONGSHORE_TEST_NATS") ?? "nats://127.0.0.1:4222";
    private readonly string _stream = "LS" + Guid.NewGuid().ToString("N")[..10].ToUpperInvariant();
    private NatsConnection _nats = null!;
    private NatsJSContext _js = null!;
    private LongshoreServer _server = null!;

    private string Subject => "jobs." + _stream.ToLowerInvariant();

    public async Task InitializeAsync()
    {
        _nats = new NatsConnection(new NatsOpts { Url = Url });
        _js = new NatsJSContext(_nats);
        await _js.CreateStreamAsync(new StreamConfig(_stream, [Subject]));
        _server = await LongshoreServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await _js.DeleteStreamAsync(_stream);
        await _nats.DisposeAsync();
    }

    private Dictionary<string, object> Queue(string id, string cmd, string maxDeliver = "5", string ackWait = "21600") => QueueDefinitions.Create(id, cmd, "nats",
        new Dictionary<string, string>
        {
            ["url"] = Url, ["stream"] = _stream, ["subject"] = Subject, ["nak_delay_seconds"] = "1", ["max_deliver"] = maxDeliver, ["ack_wait_seconds"] = ackWait,
        },
        new() { ["frequency_seconds"] = 1 });

    [Fact]
    public async Task MessageRedeliveredWhileItsTaskRuns_MakesNoSecondTask_AndIsAcknowledgedThroughTheLatestDelivery()
    {
        var id = Families.New("natsdedup");
        await _js.PublishAsync(Subject, System.Text.Encoding.UTF8.GetBytes("once"));
        // The server redelivers after 2 s without an ack, as it would after a crash between recording and settling.
        (await _server.Http.PostAsJsonAsync("/queues/", Queue(id, "sleep 7; printf '%s' $HIPPO_DATA", ackWait: "2"))).EnsureSuccessStatusCode();

        await WaitUntilAsync(() => Task.FromResult(_server.Output.Contains("was delivered again", StringComparison.Ordinal)), TimeSpan.FromSeconds(30));
        await WaitUntilAsync(async () => (await RunsAsync(id)).Any(r => r.GetProperty("mesos_state").GetString() == "TASK_FINISHED"), TimeSpan.FromSeconds(60));
        await WaitUntilAsync(async () => (await _js.GetConsumerAsync(_stream, "longshore-" + id.Replace('.', '-'))).Info.NumAckPending == 0);
        await Task.Delay(3000);

        var runs = await RunsAsync(id);
        Assert.Single(runs);
        var consumer = await _js.GetConsumerAsync(_stream, "longshore-" + id.Replace('.', '-'));
        Assert.Equal(0, consumer.Info.NumAckPending);
        Assert.Equal(0UL, consumer.Info.NumPending);
        Assert.True(consumer.Info.Delivered.ConsumerSeq >= 2, $"delivered {consumer.Info.Delivered.ConsumerSeq} times: the redelivery never happened");
    }

    [Fact]
    public async Task PublishedMessages_BecomeTasks_AndAreAcknowledged()
    {
        var id = Families.New("natsq");
        foreach (var text in (string[])["alpha", "beta; $(rm -rf /)", "gamma"])
            await _js.PublishAsync(Subject, System.Text.Encoding.UTF8.GetBytes(text));
        (await _server.Http.PostAsJsonAsync("/queues/", Queue(id, "printf '%s' $HIPPO_DATA"))).EnsureSuccessStatusCode();

        await WaitUntilAsync(async () => (await RunsAsync(id)).Count(r => r.GetProperty("mesos_state").GetString() == "TASK_FINISHED") == 3);
        var payloads = (await RunsAsync(id)).Select(r => r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()).Order().ToList();
        Assert.Equal(["alpha", "beta; $(rm -rf /)", "gamma"], payloads);
        // Acknowledged: nothing pending or waiting on the consumer once the tasks are done.
        await WaitUntilAsync(async () =>
        {
            var consumer = await _js.GetConsumerAsync(_stream, "longshore-" + id.Replace('.', '-'));
            return consumer.Info.NumAckPending == 0 && consumer.Info.NumPending == 0;
        });
    }

    [Fact]
    public async Task FailedTask_IsDeliveredAgainAfterTheNakDelay_UntilMaxDeliver_ThenTerminated()
    {
        var id = Families.New("natsfail");
        await _js.PublishAsync(Subject, System.Text.Encoding.UTF8.GetBytes("poison"));
        (await _server.Http.PostAsJsonAsync("/queues/", Queue(id, "exit 4", maxDeliver: "3"))).EnsureSuccessStatusCode();

        await WaitUntilAsync(async () => (await RunsAsync(id)).Count(r => r.GetProperty("mesos_state").GetString() == "TASK_FAILED") == 3, TimeSpan.FromSeconds(150));
        // Terminated on the third failure: the server does not deliver it a fourth time.
        await Task.Delay(5000);

        var runs = await RunsAsync(id);
        Assert.Equal(3, runs.Count);
        Assert.All(runs, r => Assert.Equal("poison", r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()));
        var starts = runs.Select(r => r.GetProperty("created_at").GetDateTimeOffset()).Order().ToList();
        Assert.All(starts.Zip(starts.Skip(1), (a, b) => b - a), gap => Assert.True(gap >= TimeSpan.FromSeconds(0.9), $"redelivered after {gap}"));
        var consumer = await _js.GetConsumerAsync(_stream, "longshore-" + id.Replace('.', '-'));
        Assert.Equal(0, consumer.Info.NumAckPending);
    }

    private Task<List<JsonElement>> RunsAsync(string id) => _server.RunsAsync(id);

    private Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan? timeout = null) =>
        Eventually.WaitUntilAsync(condition, timeout ?? TimeSpan.FromSeconds(30), () => _server.Output);
}
