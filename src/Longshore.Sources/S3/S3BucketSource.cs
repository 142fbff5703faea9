using System.Globalization;
using Amazon.S3;
using Amazon.S3.Model;
using Longshore.Core.Queues;
using Longshore.Sources.Aws;

namespace Longshore.Sources.S3;

/// <summary>
/// <c>s3bucket</c>: every new object in a bucket (optionally under a prefix) becomes one message whose payload is the
/// object's key. "New" is decided by key and last-modified time against a durable watermark (<see cref="S3Watermark"/>)
/// stored in the same transaction as the tasks, so each object version is taken exactly once, across restarts too. The
/// bucket is listed in full on each poll (S3 cannot list by time). Nothing is settled at the source: objects stay.
/// </summary>
public sealed class S3BucketSource : IQueueSource, IDisposable
{
    private readonly AwsConnection<AmazonS3Client, AmazonS3Config> _connection =
        new((credentials, config) => credentials is null ? new AmazonS3Client(config) : new AmazonS3Client(credentials, config));

    public QueueType Type { get; } = new("s3bucket", "s3bucket", "AWS S3 bucket (key list)",
    [
        .. AwsConnection<AmazonS3Client, AmazonS3Config>.Inputs,
        new QueueInput("bucket_name", "Bucket name, or bucket/prefix (as Hippo)"),
        new QueueInput("earliest_unix_tstamp", "Skip objects last modified before this Unix time in seconds (empty: from the start)", "", Required: false),
        new QueueInput("prefix", "Only keys starting with this prefix", Required: false),
    ]);

    public IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> settings)
    {
        var errors = new List<string>();
        AwsConnection<AmazonS3Client, AmazonS3Config>.Validate("s3bucket", settings, errors);
        var (bucket, prefix) = Location(settings);
        if (bucket.Length is < 3 or > 63 || !bucket.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '-')
            || !char.IsAsciiLetterOrDigit(bucket[0]) || !char.IsAsciiLetterOrDigit(bucket[^1]))
            errors.Add("queue.s3bucket.bucket_name: must be a bucket name (3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit), optionally followed by /prefix");
        if (settings.GetValueOrDefault("earliest_unix_tstamp") is { Length: > 0 } && Earliest(settings) is null)
            errors.Add("queue.s3bucket.earliest_unix_tstamp: must be empty or a Unix time in seconds (a number from 0)");
        if (prefix is { Length: > 1024 })
            errors.Add("queue.s3bucket.prefix: must be at most 1024 characters");
        if (settings.GetValueOrDefault("bucket_name") is { } name && name.Contains('/', StringComparison.Ordinal) && settings.GetValueOrDefault("prefix") is { Length: > 0 })
            errors.Add("queue.s3bucket.prefix: give the key prefix once, either in bucket_name (bucket/prefix, as Hippo) or in prefix");
        return errors;
    }

    public async Task<PollResult> PollAsync(StoredQueue queue, IReadOnlyDictionary<string, string> state, int max, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        var settings = Type.SettingsOf(queue.Block);
        var client = _connection.ClientFor(settings, config => config.ForcePathStyle = settings.GetValueOrDefault("endpoint") is { Length: > 0 });
        var (bucket, prefix) = Location(settings);
        var listed = new List<S3Listed>();
        var request = new ListObjectsV2Request { BucketName = bucket, Prefix = prefix };
        do
        {
            var page = await client.ListObjectsV2Async(request, cancellationToken);
            listed.AddRange((page.S3Objects ?? []).Where(o => o.LastModified is not null)
                .Select(o => new S3Listed(o.Key, new DateTimeOffset(o.LastModified!.Value.ToUniversalTime()).ToUnixTimeMilliseconds(), o.ETag)));
            request.ContinuationToken = page.IsTruncated is true ? page.NextContinuationToken : null;
        }
        while (request.ContinuationToken is not null);

        var (taken, next) = S3Watermark.Select(listed, state, Earliest(settings), max);
        // The watermark takes each object version once; the same identity also feeds the store's 24 h duplicate check.
        return new PollResult(taken.Select(o => new QueueMessage(o.Key) { DedupKey = $"{bucket}/{o.Key}@{o.LastModifiedMs}:{o.ETag}" }).ToList(), next);
    }

    /// <summary>The bucket, and the key prefix from <c>prefix</c> or from Hippo's <c>bucket_name</c> form <c>bucket/prefix</c>; null for none.</summary>
    private static (string Bucket, string? Prefix) Location(IReadOnlyDictionary<string, string> settings)
    {
        var name = settings.GetValueOrDefault("bucket_name") ?? string.Empty;
        var slash = name.IndexOf('/', StringComparison.Ordinal);
        var prefix = slash >= 0 ? name[(slash + 1)..] : settings.GetValueOrDefault("prefix");
        return (slash >= 0 ? name[..slash] : name, prefix is { Length: > 0 } ? prefix : null);
    }

    /// <summary>Hippo's <c>earliest_unix_tstamp</c> (seconds, possibly fractional) in milliseconds; null when unset or invalid.</summary>
    private static long? Earliest(IReadOnlyDictionary<string, string> settings) =>
        settings.GetValueOrDefault("earliest_unix_tstamp") is { Length: > 0 } value
        && double.TryParse(value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds) && seconds < 1e11
            ? (long)Math.Ceiling(seconds * 1000)
            : null;

    public void Dispose() => _connection.Dispose();
}
