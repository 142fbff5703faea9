using System.Globalization;
using Longshore.Bench;

// Benchmarks print ratios against a baseline measured in the same run: machines here are shared and noisy.
var options = BenchOptions.Parse(args);
if (options is null)
{
    Console.Error.WriteLine("usage: Longshore.Bench [launch] [creates] [memory] [queue] [match] [throughput] [volume] [pass] [kubernetes] [retention] [--launch N] [--concurrency C] [--creates N] [--stored N] [--messages N] [--latency N] [--tasks N] [--volume N] [--active N] [--retention-runs N] [--stores sqlite,postgres,redis]");
    return 2;
}

var endpoint = Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } host ? host : "unix:///run/longshore/podman.sock";
var results = new List<(string Name, string Value, string Target)>();
if (options.Scenarios.Contains("launch"))
    results.AddRange(await LaunchBench.RunAsync(endpoint, options.Launch, options.Concurrency));
if (options.Scenarios.Contains("creates"))
    results.AddRange(await CreateBench.RunAsync(endpoint, options.Creates));
if (options.Scenarios.Contains("memory"))
    results.AddRange(await MemoryBench.RunAsync(endpoint, options.Stored));
if (options.Scenarios.Contains("queue"))
    results.AddRange(await QueueBench.RunAsync(endpoint, Environment.GetEnvironmentVariable("LONGSHORE_TEST_REDIS") ?? "127.0.0.1:6379", options.Messages, options.Latency, options.Stores));
if (options.Scenarios.Contains("match"))
    results.AddRange(MatchBench.Run());
if (options.Scenarios.Contains("throughput"))
    results.AddRange(await StoreBench.RunThroughputAsync(options.Tasks));
if (options.Scenarios.Contains("pass"))
    results.AddRange(await PassBench.RunAsync(options.Volume, options.Active, options.Stores));
if (options.Scenarios.Contains("kubernetes"))
{
    var kubeconfig = Environment.GetEnvironmentVariable("LONGSHORE_TEST_KUBECONFIG") ?? Environment.GetEnvironmentVariable("KUBECONFIG");
    if (kubeconfig is null)
        Console.Error.WriteLine("kubernetes: set LONGSHORE_TEST_KUBECONFIG (scripts/setup-kubernetes.sh prints it) to run it");
    else
        results.AddRange(await KubernetesBench.RunAsync(kubeconfig, options.Launch, options.Concurrency));
}

if (options.Scenarios.Contains("volume"))
    results.AddRange(await StoreBench.RunVolumeAsync(options.Volume, options.Stores));
if (options.Scenarios.Contains("retention"))
    results.AddRange(await RetentionBench.RunAsync(options.RetentionRuns, options.Stores));

Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"measure",-52} {"value",-28} target"));
foreach (var (name, value, target) in results)
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-52} {value,-28} {target}"));
return 0;

namespace Longshore.Bench
{
    internal sealed record BenchOptions(HashSet<string> Scenarios, int Launch, int Concurrency, int Creates, int Stored, int Messages, int Latency)
    {
        /// <summary>Tasks of the store throughput scenario (and Hangfire jobs of its anchor).</summary>
        public int Tasks { get; init; } = 20_000;

        /// <summary>Runs seeded per store by the volume scenario.</summary>
        public int Volume { get; init; } = 1_000_000;

        public IReadOnlyList<string> Stores { get; init; } = ["sqlite", "postgres", "redis"];

        /// <summary>Active runs among the stored ones in the pass scenario.</summary>
        public int Active { get; init; } = 200_000;

        /// <summary>Runs seeded per store by the retention scenario.</summary>
        public int RetentionRuns { get; init; } = 1_000_000;

        public static BenchOptions? Parse(string[] args)
        {
            var scenarios = new HashSet<string>(StringComparer.Ordinal);
            int launch = 50, concurrency = 8, creates = 5000, stored = 100_000, messages = 100_000, latency = 100, tasks = 20_000, volume = 1_000_000, active = 200_000, retentionRuns = 1_000_000;
            IReadOnlyList<string> stores = ["sqlite", "postgres", "redis"];
            for (var i = 0; i < args.Length; i++)
            {
                switch (args[i])
                {
                    case "launch" or "creates" or "memory" or "queue" or "match" or "throughput" or "volume" or "pass" or "kubernetes" or "retention":
                        scenarios.Add(args[i]);
                        break;
                    case "--launch" when i + 1 < args.Length:
                        launch = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--concurrency" when i + 1 < args.Length:
                        concurrency = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--creates" when i + 1 < args.Length:
                        creates = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--tasks" when i + 1 < args.Length:
                        tasks = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--retention-runs" when i + 1 < args.Length:
                        retentionRuns = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--volume" when i + 1 < args.Length:
                        volume = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--stores" when i + 1 < args.Length:
                        stores = args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries);
                        break;
                    case "--stored" when i + 1 < args.Length:
                        stored = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--messages" when i + 1 < args.Length:
                        messages = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--active" when i + 1 < args.Length:
                        active = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--latency" when i + 1 < args.Length:
                        latency = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    default:
                        return null;
                }
            }

            if (scenarios.Count == 0)
                scenarios.UnionWith(["launch", "creates", "memory", "queue"]);
            return new BenchOptions(scenarios, launch, concurrency, creates, stored, messages, latency) { Tasks = tasks, Volume = volume, Stores = stores, Active = active, RetentionRuns = retentionRuns };
        }
    }
}
