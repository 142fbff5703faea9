using System.Net.Http.Json;
using System.Text.Json;
using Amazon.SQS;
using Amazon.SQS.Model;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests;

/// <summary>The sqs source through the fauxqs emulator with the real AWS SDK, and the real engine.</summary>
public sealed class SqsQueueTests() : EmulatedAwsTests<AmazonSQSClient>(AwsEmulator.Sqs)
{
    private async Task<string> NewQueueAsync(string id) =>
        (await Client.CreateQueueAsync(new CreateQueueRequest { QueueName = "q-" + id })).QueueUrl;

    private static Dictionary<string, object> Queue(string id, string cmd, int batchSize = 1, string status = "ENABLED", int visibility = 30, int wait = 1)
    {
        var settings = AwsEmulator.Settings();
        settings["queuename"] = "q-" + id;
        settings["visibility_seconds"] = visibility.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["wait_seconds"] = wait.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return QueueDefinitions.Create(id, cmd, "sqs", settings, new() { ["batch_size"] = batchSize, ["frequency_seconds"] = 1, ["status"] = status });
    }

    [Fact]
    public async Task SentMessages_BecomeTasksPrintingExactlyTheirPayload_AndAreDeleted()
    {
        var id = Families.New("sqsq");
        var url = await NewQueueAsync(id);
        string[] payloads = ["one", "two \"quoted\"; $(touch /tmp/x) 'single'", "three; rm -rf / `id`"];
        foreach (var payload in payloads)
            await Client.SendMessageAsync(url, payload);
        (await Server.Http.PostAsJsonAsync("/queues/", Queue(id, "printf '%s' $HIPPO_DATA"))).EnsureSuccessStatusCode();

        var runs = await WaitForEndedAsync(id, 3);

        Assert.All(runs, run => Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString()));
        var outputs = await Server.StdoutsAsync(runs);
        Assert.Equal(payloads.Order(StringComparer.Ordinal), outputs.Order(StringComparer.Ordinal));
        // Deleted, not merely hidden: nothing visible and nothing in flight.
        await WaitUntilAsync(async () => await CountAsync(url) == (0, 0));
    }

    [Fact]
    public async Task FailedTask_MakesItsMessageVisibleAgainAtOnce_ItIsRedeliveredAndNeverDeleted()
    {
        var id = Families.New("sqsfail");
        var url = await NewQueueAsync(id);
        await Client.SendMessageAsync(url, "poison");
        // A 60 s visibility timeout: a redelivery within it proves the release, not the timeout, brought the message back.
        (await Server.Http.PostAsJsonAsync("/queues/", Queue(id, "exit 9", visibility: 60))).EnsureSuccessStatusCode();

        await WaitUntilAsync(async () => (await RunsAsync(id)).Count(r => r.GetProperty("mesos_state").GetString() == "TASK_FAILED") >= 2, TimeSpan.FromSeconds(45));
        await Server.Http.GetAsync($"/queues/{id}/disable/");
        await WaitUntilAsync(async () => (await RunsAsync(id)).All(r => TestStates.IsTerminal(r.GetProperty("mesos_state").GetString()!)), TimeSpan.FromSeconds(60));
        await WaitUntilAsync(async () => await CountAsync(url) == (1, 0));

        var received = await Client.ReceiveMessageAsync(new ReceiveMessageRequest { QueueUrl = url, WaitTimeSeconds = 1, MessageSystemAttributeNames = ["ApproximateReceiveCount"] });
        Assert.Equal("poison", Assert.Single(received.Messages).Body);
        Assert.True(int.Parse(received.Messages[0].Attributes?.GetValueOrDefault("ApproximateReceiveCount") ?? "0", System.Globalization.CultureInfo.InvariantCulture) >= 3);
        Assert.All(await RunsAsync(id), run => Assert.Equal("poison", run.GetProperty("env").GetProperty("HIPPO_DATA").GetString()));
    }

    [Fact]
    public async Task TaskRunningLongerThanTheVisibilityTimeout_IsNotDeliveredTwice()
    {
        var id = Families.New("sqslong");
        var url = await NewQueueAsync(id);
        await Client.SendMessageAsync(url, "slow");
        // Visibility 2 s, task 7 s: without renewal the message would reappear and be polled again within the run.
        (await Server.Http.PostAsJsonAsync("/queues/", Queue(id, "sleep 7", visibility: 2))).EnsureSuccessStatusCode();

        await WaitUntilAsync(async () => (await RunsAsync(id)).Any(r => r.GetProperty("mesos_state").GetString() == "TASK_RUNNING"));
        await Task.Delay(4000);
        Assert.Equal((0, 1), await CountAsync(url));
        var runs = await WaitForEndedAsync(id, 1);
        await WaitUntilAsync(async () => await CountAsync(url) == (0, 0));
        await Task.Delay(3000);

        Assert.Equal("TASK_FINISHED", Assert.Single(await RunsAsync(id)).GetProperty("mesos_state").GetString());
        Assert.Equal("TASK_FINISHED", Assert.Single(runs).GetProperty("mesos_state").GetString());
        Assert.Equal((0, 0), await CountAsync(url));
    }

    [Fact]
    public async Task Batches_JoinPayloads_BacklogIsShownWhileDisabled_AndTheSecretIsNeverShown()
    {
        var id = Families.New("sqsbatch");
        var url = await NewQueueAsync(id);
        foreach (var payload in (string[])["a", "b", "c", "d", "e"])
            await Client.SendMessageAsync(url, payload);
        (await Server.Http.PostAsJsonAsync("/queues/", Queue(id, "true", batchSize: 3, status: "DISABLED"))).EnsureSuccessStatusCode();

        var queue = JsonDocument.Parse(await Server.Http.GetStringAsync($"/queues/{id}/")).RootElement;
        Assert.Equal(5, queue.GetProperty("stats").GetProperty("backlog").GetInt64());
        Assert.Equal("***", queue.GetProperty("queue").GetProperty("sqs").GetProperty("awssecret").GetString());
        await Server.Http.GetAsync($"/queues/{id}/enable/");
        var runs = await WaitForEndedAsync(id, 2);

        var batches = runs.Select(r => r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!).ToList();
        // Standard SQS queues do not keep order: check the split, not which message went where.
        Assert.Equal([2, 3], batches.Select(b => b.Split('|').Length).Order());
        Assert.Equal(["a", "b", "c", "d", "e"], batches.SelectMany(b => b.Split('|')).Order(StringComparer.Ordinal));
        await WaitUntilAsync(async () => await CountAsync(url) == (0, 0));
        Assert.DoesNotContain(AwsEmulator.Secret, Server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task QueueTypes_ShowSqsAndS3Bucket_WithTheirInputs_TheSecretMarked_AndQueueNameRequired()
    {
        var types = JsonDocument.Parse(await Server.Http.GetStringAsync("/queuetypes/")).RootElement.EnumerateArray().ToList();
        var sqs = types.Single(t => t.GetProperty("type").GetString() == "sqs");
        var s3 = types.Single(t => t.GetProperty("type").GetString() == "s3bucket");

        Assert.Equal("s3bucket", s3.GetProperty("namespace").GetString());
        static JsonElement Input(JsonElement type, string name) => type.GetProperty("inputs").GetProperty(name);
        foreach (var type in (JsonElement[])[sqs, s3])
        {
            Assert.True(Input(type, "awssecret").GetProperty("secret").GetBoolean());
            Assert.Equal("password", Input(type, "awssecret").GetProperty("input").GetString());
            Assert.False(Input(type, "awskey").GetProperty("secret").GetBoolean());
            Assert.Equal("us-east-1", Input(type, "awsregion").GetProperty("default").GetString());
        }

        Assert.True(Input(sqs, "queuename").GetProperty("required").GetBoolean());
        Assert.Equal(5, Input(sqs, "wait_seconds").GetProperty("default").GetInt32());
        Assert.True(Input(s3, "bucket_name").GetProperty("required").GetBoolean());
        Assert.False(Input(s3, "earliest_unix_tstamp").GetProperty("required").GetBoolean());
    }

    [Theory]
    [InlineData("wait_seconds", "21", "queue.sqs.wait_seconds")]
    [InlineData("visibility_seconds", "1", "queue.sqs.visibility_seconds")]
    [InlineData("queuename", "bad name!", "queue.sqs.queuename")]
    [InlineData("endpoint", "ftp://127.0.0.1:4566", "queue.sqs.endpoint")]
    [InlineData("awsregion", "US East", "queue.sqs.awsregion")]
    [InlineData("awskey", "", "queue.sqs.awskey")]
    public Task InvalidSettings_Are400NamingTheField(string setting, string value, string expected) =>
        Server.AssertRefusedAsync(Queue(Families.New("sqsbad"), "true"), "sqs", setting, value, expected);

    /// <summary>(visible, in flight) messages of the queue.</summary>
    private async Task<(int Visible, int InFlight)> CountAsync(string url)
    {
        var attributes = await Client.GetQueueAttributesAsync(new GetQueueAttributesRequest
        {
            QueueUrl = url,
            AttributeNames = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        });
        return (attributes.ApproximateNumberOfMessages, attributes.ApproximateNumberOfMessagesNotVisible);
    }

    private Task<List<JsonElement>> RunsAsync(string id) => Server.RunsAsync(id);

    private Task<List<JsonElement>> WaitForEndedAsync(string id, int count) => Server.WaitForEndedAsync(id, count);

    private Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan? timeout = null) => Server.WaitUntilAsync(condition, timeout);
}
