using System.Collections.Concurrent;
using Amazon;
using Amazon.Runtime;
using Longshore.Core.Queues;

namespace Longshore.Sources.Aws;

/// <summary>
/// The settings every AWS source shares — credentials, region and an optional endpoint — and the SDK clients built from
/// them, one per distinct combination, shared by every queue that uses it. Without <c>awskey</c> the SDK's default
/// credential chain applies (environment, instance or task role). With an <c>endpoint</c> (an emulator or a VPC
/// endpoint) requests go there and are signed for <c>awsregion</c>.
/// </summary>
internal sealed class AwsConnection<TClient, TConfig>(Func<AWSCredentials?, TConfig, TClient> create) : IDisposable
    where TClient : class, IDisposable
    where TConfig : ClientConfig, new()
{
    public const string DefaultRegion = "us-east-1";

    private readonly ConcurrentDictionary<string, TClient> _clients = new(StringComparer.Ordinal);

    /// <summary>The shared inputs, in the order <c>GET /queuetypes/</c> shows them.</summary>
    public static IReadOnlyList<QueueInput> Inputs { get; } =
    [
        new QueueInput("awskey", "AWS access key id (empty: the default credential chain)", Required: false),
        new QueueInput("awssecret", "AWS secret access key", Required: false, Secret: true),
        new QueueInput("awsregion", "AWS region", DefaultRegion, Required: false),
        new QueueInput("endpoint", "Endpoint URL (empty: AWS; set for an emulator or a VPC endpoint)", Required: false),
    ];

    /// <summary>Adds an error naming <c>queue.&lt;ns&gt;.&lt;setting&gt;</c> for each shared setting that is wrong.</summary>
    public static void Validate(string ns, IReadOnlyDictionary<string, string> settings, List<string> errors)
    {
        var key = settings.GetValueOrDefault("awskey") ?? string.Empty;
        var secret = settings.GetValueOrDefault("awssecret") ?? string.Empty;
        if (key.Length == 0 && secret.Length > 0)
            errors.Add($"queue.{ns}.awskey: is required when awssecret is set");
        if (key.Length > 0 && secret.Length == 0)
            errors.Add($"queue.{ns}.awssecret: is required when awskey is set");
        if (key.Length > 128 || key.Any(char.IsWhiteSpace))
            errors.Add($"queue.{ns}.awskey: must be an access key id (at most 128 characters, no spaces)");
        if (settings.GetValueOrDefault("awsregion") is { Length: > 0 } region
            && (region.Length > 32 || !region.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-')))
            errors.Add($"queue.{ns}.awsregion: must be a region name such as us-east-1 (lowercase letters, digits and '-')");
        if (settings.GetValueOrDefault("endpoint") is { Length: > 0 } endpoint
            && (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Query.Length > 0))
            errors.Add($"queue.{ns}.endpoint: must be an http:// or https:// URL without a query");
    }

    public static string Region(IReadOnlyDictionary<string, string> settings) =>
        settings.GetValueOrDefault("awsregion") is { Length: > 0 } region ? region : DefaultRegion;

    /// <summary>The client for these settings; <paramref name="configure"/> adds what only one service needs.</summary>
    public TClient ClientFor(IReadOnlyDictionary<string, string> settings, Action<TConfig>? configure = null)
    {
        var key = settings.GetValueOrDefault("awskey") ?? string.Empty;
        var secret = settings.GetValueOrDefault("awssecret") ?? string.Empty;
        var region = Region(settings);
        var endpoint = settings.GetValueOrDefault("endpoint") ?? string.Empty;
        // Kept in memory only, like the connection caches of the other sources.
        var cacheKey = string.Join('\n', key, secret, region, endpoint);
        return _clients.GetOrAdd(cacheKey, _ =>
        {
            var config = new TConfig();
            if (endpoint.Length > 0)
            {
                config.ServiceURL = endpoint;
                config.AuthenticationRegion = region;
            }
            else
            {
                config.RegionEndpoint = RegionEndpoint.GetBySystemName(region);
            }

            configure?.Invoke(config);
            return create(key.Length > 0 ? new BasicAWSCredentials(key, secret) : null, config);
        });
    }

    public void Dispose()
    {
        foreach (var client in _clients.Values)
            client.Dispose();
    }
}
