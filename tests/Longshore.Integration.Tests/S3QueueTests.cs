using System.Net.Http.Json;
using System.Text.Json;
using Amazon.S3;
using Amazon.S3.Model;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests;

/// <summary>The s3bucket source through the fauxqs emulator with the real AWS SDK, and the real engine.</summary>
public sealed class S3QueueTests() : EmulatedAwsTests<AmazonS3Client>(AwsEmulator.S3)
{
    private static string Bucket(string id) => "b-" + id.ToLowerInvariant();

    private static Dictionary<string, object> Queue(string id, string cmd, string? earliest = null, string? prefix = null)
    {
        var settings = AwsEmulator.Settings();
        settings["bucket_name"] = Bucket(id);
        if (earliest is not null)
            settings["earliest_unix_tstamp"] = earliest;
        if (prefix is not null)
            settings["prefix"] = prefix;
        return QueueDefinitions.Create(id, cmd, "s3bucket", settings, new() { ["frequency_seconds"] = 1 });
    }

    private async Task PutAsync(string id, params string[] keys)
    {
        foreach (var key in keys)
            await Client.PutObjectAsync(new PutObjectRequest { BucketName = Bucket(id), Key = key, ContentBody = "body of " + key });
    }

    [Fact]
    public async Task EachObject_BecomesOneTaskWithItsKey_NewObjectsLater_OldOnesNeverAgain_AlsoAfterAKill()
    {
        var id = Families.New("s3q");
        await Client.PutBucketAsync(Bucket(id));
        string[] first = ["dir/a b.txt", "q\"uote;$(id)'x'.csv", "plain"];
        await PutAsync(id, first);
        (await Server.Http.PostAsJsonAsync("/queues/", Queue(id, "printf '%s' $HIPPO_DATA"))).EnsureSuccessStatusCode();

        var runs = await WaitForEndedAsync(id, 3);
        var outputs = await Server.StdoutsAsync(runs);
        Assert.Equal(first.Order(StringComparer.Ordinal), outputs.Order(StringComparer.Ordinal));

        await PutAsync(id, "later-1", "later-2");
        await WaitForEndedAsync(id, 5);
        await Server.KillHardAsync();
        await PutAsync(id, "while-down");
        await Server.StartAgainAsync();
        await WaitForEndedAsync(id, 6);
        await PutAsync(id, "after-restart");
        await WaitForEndedAsync(id, 7);
        await Task.Delay(3000);

        var payloads = (await RunsAsync(id)).Select(r => r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!).ToList();
        Assert.Equal(payloads.Distinct().Count(), payloads.Count);
        Assert.Equal(((string[])[.. first, "later-1", "later-2", "while-down", "after-restart"]).Order(StringComparer.Ordinal), payloads.Order(StringComparer.Ordinal));
        // Nothing is settled at the source: the objects stay.
        Assert.Equal(7, (await Client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = Bucket(id) })).S3Objects.Count);
    }

    [Fact]
    public async Task EarliestTimestamp_SkipsOlderObjects_AndPrefixFilters()
    {
        var id = Families.New("s3filter");
        await Client.PutBucketAsync(Bucket(id));
        await PutAsync(id, "in/old");
        await Task.Delay(1500);
        var earliest = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        await Task.Delay(1500);
        await PutAsync(id, "in/new", "out/new");
        (await Server.Http.PostAsJsonAsync("/queues/", Queue(id, "true", earliest.ToString(System.Globalization.CultureInfo.InvariantCulture), "in/"))).EnsureSuccessStatusCode();

        await WaitForEndedAsync(id, 1);
        await PutAsync(id, "in/newer", "out/newer");
        await WaitForEndedAsync(id, 2);
        await Task.Delay(3000);

        Assert.Equal(["in/new", "in/newer"], (await RunsAsync(id)).Select(r => r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("bucket_name", "Bad_Bucket", "queue.s3bucket.bucket_name")]
    [InlineData("earliest_unix_tstamp", "yesterday", "queue.s3bucket.earliest_unix_tstamp")]
    [InlineData("endpoint", "not a url", "queue.s3bucket.endpoint")]
    [InlineData("awssecret", "", "queue.s3bucket.awssecret")]
    public Task InvalidSettings_Are400NamingTheField(string setting, string value, string expected) =>
        Server.AssertRefusedAsync(Queue(Families.New("s3bad"), "true"), "s3bucket", setting, value, expected);

    private Task<List<JsonElement>> RunsAsync(string id) => Server.RunsAsync(id);

    private Task<List<JsonElement>> WaitForEndedAsync(string id, int count) => Server.WaitForEndedAsync(id, count);

    private Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan? timeout = null) => Server.WaitUntilAsync(condition, timeout);
}
