using Amazon.S3;
using Amazon.S3.Model;
using Amazon.SQS;
using Amazon.SQS.Model;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Queues;

#pragma warning disable CA1001 // Disposed in CleanupAsync, which xunit's DisposeAsync calls.
public sealed class SqsQueueAcceptanceTests : QueueAcceptanceTests
#pragma warning restore CA1001
{
    private readonly AmazonSQSClient _sqs = AwsEmulator.Sqs();
    private string _url = string.Empty;

    private string Name => "q-" + Id;

    protected override string Type => "sqs";

    protected override async Task PrepareAsync() => _url = (await _sqs.CreateQueueAsync(Name)).QueueUrl;

    protected override Task CleanupAsync()
    {
        _sqs.Dispose();
        return Task.CompletedTask;
    }

    // A short visibility timeout: messages taken but not recorded when Longshore is killed come back within the test.
    protected override Dictionary<string, string> Settings() =>
        new(AwsEmulator.Settings()) { ["queuename"] = Name, ["wait_seconds"] = "1", ["visibility_seconds"] = "10" };

    protected override async Task PushAsync(IReadOnlyList<string> payloads)
    {
        foreach (var chunk in payloads.Chunk(10))
        {
            await _sqs.SendMessageBatchAsync(_url, chunk.Select((p, i) => new SendMessageBatchRequestEntry(i.ToString(System.Globalization.CultureInfo.InvariantCulture), p)).ToList());
        }
    }

    protected override async Task<bool> DrainedAsync()
    {
        var attributes = await _sqs.GetQueueAttributesAsync(new GetQueueAttributesRequest
        {
            QueueUrl = _url,
            AttributeNames = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        });
        return attributes.ApproximateNumberOfMessages == 0 && attributes.ApproximateNumberOfMessagesNotVisible == 0;
    }
}

#pragma warning disable CA1001 // Disposed in CleanupAsync, which xunit's DisposeAsync calls.
public sealed class S3QueueAcceptanceTests : QueueAcceptanceTests
#pragma warning restore CA1001
{
    private readonly AmazonS3Client _s3 = AwsEmulator.S3();

    private string Bucket => "b-" + Id.ToLowerInvariant();

    protected override string Type => "s3bucket";

    protected override async Task PrepareAsync() => await _s3.PutBucketAsync(Bucket);

    protected override Task CleanupAsync()
    {
        _s3.Dispose();
        return Task.CompletedTask;
    }

    protected override Dictionary<string, string> Settings() => new(AwsEmulator.Settings()) { ["bucket_name"] = Bucket };

    // Each message is an object whose key is the payload.
    protected override async Task PushAsync(IReadOnlyList<string> payloads)
    {
        foreach (var payload in payloads)
            await _s3.PutObjectAsync(new PutObjectRequest { BucketName = Bucket, Key = payload, ContentBody = "x" });
    }

    // Objects stay in the bucket; nothing is owed to the source.
    protected override Task<bool> DrainedAsync() => Task.FromResult(true);
}
