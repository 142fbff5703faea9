using Amazon.Runtime;
using Amazon.S3;
using Amazon.SQS;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>
/// The SQS/S3 emulator scripts/setup-services.sh starts (fauxqs on 127.0.0.1:4566; LONGSHORE_TEST_AWS overrides), and
/// real AWS SDK clients pointed at it. It accepts any credentials; these are test values, not secrets.
/// </summary>
public static class AwsEmulator
{
    public const string Key = "test-key";
    public const string Secret = "test-secret";
    public const string Region = "us-east-1";

    public static string Endpoint { get; } = Environment.GetEnvironmentVariable("LONGSHORE_TEST_AWS") ?? "http://127.0.0.1:4566";

    public static AmazonSQSClient Sqs() =>
        new(new BasicAWSCredentials(Key, Secret), new AmazonSQSConfig { ServiceURL = Endpoint, AuthenticationRegion = Region });

    public static AmazonS3Client S3() =>
        new(new BasicAWSCredentials(Key, Secret), new AmazonS3Config { ServiceURL = Endpoint, AuthenticationRegion = Region, ForcePathStyle = true });

    /// <summary>The settings every AWS queue type shares, pointed at the emulator.</summary>
    public static Dictionary<string, string> Settings() => new()
    {
        ["awskey"] = Key,
        ["awssecret"] = Secret,
        ["awsregion"] = Region,
        ["endpoint"] = Endpoint,
    };
}
