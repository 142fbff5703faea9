namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>One server for the tests that do not restart it; each test uses its own family ids.</summary>
public sealed class SharedServerFixture : IAsyncLifetime
{
    public LongshoreServer Server { get; private set; } = null!;

    public async Task InitializeAsync() =>
        Server = await LongshoreServer.StartAsync("--retry-backoff-base", "0.2", "--retry-backoff-cap", "1", "--kill-grace", "2", "--reconcile-interval", "2",
            "--job-backoff-base", "0.5", "--job-backoff-cap", "8");

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

public static class Families
{
    public static string New(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 60)];
}

public static class Tasks
{
    public static object Definition(string id, string cmd, double mem = 32, double cpus = 0.5, int taskRetries = 0, int systemRetries = 2,
        int maxConcurrent = 10, string network = "BRIDGE", object[]? volumes = null, string? image = null, Dictionary<string, string>? env = null) => new Dictionary<string, object?>
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
    };
}
