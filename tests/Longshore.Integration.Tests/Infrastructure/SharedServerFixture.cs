namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>One server for the tests that do not restart it; each test uses its own family ids. The embedded SQLite store.</summary>
public class SharedServerFixture : IAsyncLifetime
{
    /// <summary>Quick retries, a short kill grace and frequent reconciliation, so scenarios end in seconds.</summary>
    public static readonly string[] QuickArguments = ["--retry-backoff-base", "0.2", "--retry-backoff-cap", "1", "--kill-grace", "2", "--reconcile-interval", "2",
        "--job-backoff-base", "0.5", "--job-backoff-cap", "8"];

    public LongshoreServer Server { get; private set; } = null!;

    /// <summary>The engine the server runs on, as the tests inspect it.</summary>
    public IEngineProbe Engine { get; } = new DockerProbe();

    /// <summary>Arguments choosing the store; none is the embedded default.</summary>
    protected virtual Task<string[]> StoreArgumentsAsync() => Task.FromResult<string[]>([]);

    public async Task InitializeAsync() =>
        Server = await LongshoreServer.StartAsync([.. QuickArguments, .. await StoreArgumentsAsync()]);

    public virtual async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>The shared server on the real PostgreSQL, in a schema of its own.</summary>
public sealed class PostgresServerFixture : SharedServerFixture
{
    private readonly string _schema = TestServices.UniqueName("server");

    protected override async Task<string[]> StoreArgumentsAsync() => ["--store", "postgres:" + await TestServices.CreatePostgresSchemaAsync(_schema)];

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await TestServices.DropPostgresSchemaAsync(_schema);
    }
}

/// <summary>The shared server on the real Redis, under a key prefix of its own.</summary>
public sealed class RedisServerFixture : SharedServerFixture
{
    private readonly string _prefix = TestServices.UniqueName("server") + ":";

    protected override Task<string[]> StoreArgumentsAsync() => Task.FromResult<string[]>(["--store", $"redis:{TestServices.RedisConfiguration},prefix={_prefix}"]);

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await TestServices.DropRedisPrefixAsync(_prefix);
    }
}

public static class Families
{
    public static string New(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 60)];
}

public static class Tasks
{
    public static object Definition(string id, string cmd, double mem = 32, double cpus = 0.5, int taskRetries = 0, int systemRetries = 2,
        int maxConcurrent = 10, string network = "BRIDGE", object[]? volumes = null, string? image = null, Dictionary<string, string>? env = null,
        int ports = 0) => new Dictionary<string, object?>
    {
        ["id"] = id,
        ["container"] = new Dictionary<string, object?>
        {
            ["type"] = "DOCKER",
            ["docker"] = new Dictionary<string, object?> { ["image"] = image ?? TestEngine.Image, ["network"] = network },
            ["volumes"] = volumes ?? [],
        },
        ["cmd"] = cmd,
        ["mem"] = mem,
        ["cpus"] = cpus,
        ["task_retries"] = taskRetries,
        ["system_retries"] = systemRetries,
        ["max_concurrent"] = maxConcurrent,
        ["env"] = env ?? [],
        ["ports"] = ports,
    };
}

/// <summary>
/// The shared server with <c>--engine kubernetes</c> on the test cluster, in a namespace of its own (deleted with it).
/// Without a configured cluster it starts nothing: its tests are skipped.
/// </summary>
public sealed class KubernetesServerFixture : IAsyncLifetime
{
    public LongshoreServer Server { get; private set; } = null!;

    public string Namespace { get; private set; } = "";

    public IEngineProbe Engine { get; private set; } = null!;

    /// <summary>Arguments that put a server on the test cluster in <paramref name="ns"/>.</summary>
    public static string[] Arguments(string ns) =>
        ["--engine", "kubernetes", "--kubeconfig", TestCluster.Kubeconfig!, "--kube-namespace", ns, "--kube-image-pull-grace", "5"];

    public async Task InitializeAsync()
    {
        if (TestCluster.Kubeconfig is null)
            return;
        await TestCluster.LabelNodesAsync();
        Namespace = await TestCluster.CreateNamespaceAsync("ls-test");
        Engine = new KubernetesProbe(Namespace);
        Server = await LongshoreServer.StartAsync([.. SharedServerFixture.QuickArguments, .. Arguments(Namespace)]);
    }

    public async Task DisposeAsync()
    {
        if (TestCluster.Kubeconfig is null)
            return;
        await Server.DisposeAsync();
        await TestCluster.DeleteNamespaceAsync(Namespace);
    }
}

[CollectionDefinition(TestCluster.Collection)]
public sealed class KubernetesCollection : ICollectionFixture<KubernetesServerFixture>;
