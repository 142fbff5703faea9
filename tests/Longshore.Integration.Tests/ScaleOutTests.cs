using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests;

/// <summary>
/// Several real servers on one real shared store and the real engine: one leads, the others serve the API and take
/// over when it dies; a deposed leader's writes are refused. Leases are short here so takeovers are quick.
/// </summary>
public abstract partial class ScaleOutTests : IAsyncLifetime
{
    private const double LeaseSeconds = 3;
    // A follower takes over at most one lease plus one renewal interval (a third of the lease) after the last renewal.
    private static readonly TimeSpan TakeoverBound = TimeSpan.FromSeconds(LeaseSeconds * 4 / 3);
    private readonly string _shared = Directory.CreateTempSubdirectory("longshore-scale-").FullName;
    private readonly List<LongshoreServer> _servers = [];
    private string _store = string.Empty;

    /// <summary>Creates a store of the test's own and returns its <c>--store</c> value.</summary>
    protected abstract Task<string> CreateStoreAsync();

    protected abstract Task DropStoreAsync();

    public async Task InitializeAsync() => _store = await CreateStoreAsync();

    public async Task DisposeAsync()
    {
        foreach (var server in _servers)
        {
            await server.SignalAsync("CONT");
            await server.DisposeAsync();
        }

        await DropStoreAsync();
        Directory.Delete(_shared, recursive: true);
    }

    private async Task<LongshoreServer> StartAsync(int capacity)
    {
        var server = await LongshoreServer.StartAsync("--store", _store, "--leader-lease", LeaseSeconds.ToString(CultureInfo.InvariantCulture),
            "--capacity", capacity.ToString(CultureInfo.InvariantCulture), "--allow-host-path", _shared, "--retry-backoff-base", "0.2", "--retry-backoff-cap", "1",
            "--reconcile-interval", "2");
        _servers.Add(server);
        return server;
    }

    private Task<(LongshoreServer Leader, long Term)> WaitForLeaderAsync(TimeSpan timeout, long afterTerm = 0) =>
        Leaders.WaitAsync(_servers, timeout, afterTerm);

    private Dictionary<string, object?> Volume() => new() { ["hostPath"] = _shared, ["containerPath"] = "/shared", ["mode"] = "RW" };

    [GeneratedRegex(@"Took over as scheduler with term (\d+) from \S+, ([\d.]+) s after its last renewal")]
    private static partial Regex TakeoverLine();

    [Fact]
    public async Task ThreeInstances_LeaderKilledTwice_EveryTaskRunsOnceAndFinishes()
    {
        for (var i = 0; i < 3; i++)
            await StartAsync(capacity: 12);
        var (leader, term) = await WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var family = Families.New("scale");
        const int total = 100;
        var ids = new string[total];
        await Parallel.ForEachAsync(Enumerable.Range(0, total), new ParallelOptions { MaxDegreeOfParallelism = 6 }, async (i, _) =>
            ids[i] = await _servers[i % 3].PostTaskAsync(Tasks.Definition(family, $"echo task-{i} >> /shared/launches", mem: 16, cpus: 0.1,
                systemRetries: 5, maxConcurrent: 100, volumes: [Volume()])));

        var takeovers = new List<TimeSpan>();
        foreach (var finishedBeforeKill in new[] { 30, 60 })
        {
            var watch = Stopwatch.StartNew();
            while (Launches().Count < finishedBeforeKill && watch.Elapsed < TimeSpan.FromSeconds(180))
                await Task.Delay(200);
            await leader.KillHardAsync();
            var killedAt = Stopwatch.StartNew();
            (var next, term) = await WaitForLeaderAsync(TimeSpan.FromSeconds(30), term);
            takeovers.Add(killedAt.Elapsed);
            Assert.NotSame(leader, next);
            // The killed instance comes back as a follower, so three serve the API again.
            await leader.StartAgainAsync();
            leader = next;
        }

        var live = _servers[0];
        var finals = new List<JsonElement>();
        foreach (var id in ids)
            finals.Add((await live.WaitForChainAsync(id, TimeSpan.FromSeconds(240)))[^1]);

        Assert.All(finals, run => Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString()));
        var launches = Launches();
        var twice = launches.GroupBy(line => line).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(twice.Count == 0, "launched more than once: " + string.Join(", ", twice));
        Assert.Equal(Enumerable.Range(0, total).Select(i => $"task-{i}").Order(), launches.Order());

        var logged = _servers.SelectMany(server => TakeoverLine().Matches(server.Output)).Select(m => TimeSpan.FromSeconds(double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture))).ToList();
        Assert.True(logged.Count >= 2, "takeovers logged: " + logged.Count);
        // The logged time runs from the dead leader's last renewal; a little slack for a loaded 2-core machine.
        Assert.All(logged, took => Assert.True(took < TakeoverBound + TimeSpan.FromSeconds(2), $"takeover took {took}, bound {TakeoverBound}"));
        Assert.All(takeovers, took => Assert.True(took < TakeoverBound + TimeSpan.FromSeconds(3), $"a new leader answered {took} after the kill"));
    }

    [Fact]
    public async Task LeaderFrozenPastItsLease_WhenResumed_IsFencedAndStepsDown()
    {
        await StartAsync(capacity: 8);
        await StartAsync(capacity: 8);
        var (frozen, term) = await WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var family = Families.New("frozen");
        var ids = new List<string>();
        for (var i = 0; i < 8; i++)
            ids.Add(await frozen.PostTaskAsync(Tasks.Definition(family, $"echo task-{i} >> /shared/launches; sleep 2", mem: 16, cpus: 0.1, systemRetries: 5, volumes: [Volume()])));
        // Frozen while its runs are under way: their ends reach it only after a newer leader exists.
        var watch = Stopwatch.StartNew();
        while (Launches().Count < 2 && watch.Elapsed < TimeSpan.FromSeconds(60))
            await Task.Delay(50);
        await frozen.SignalAsync("STOP");
        var (successor, newTerm) = await WaitForLeaderAsync(TimeSpan.FromSeconds(30), term);
        Assert.NotSame(frozen, successor);
        await Task.Delay(TimeSpan.FromSeconds(3));
        await frozen.SignalAsync("CONT");

        // Steps down: healthz stops saying leader at once, the log line follows once its loops have stopped.
        var steppedDown = $"Stepped down as scheduler (term {term})";
        watch.Restart();
        while (watch.Elapsed < TimeSpan.FromSeconds(20)
            && ((await frozen.HealthAsync())?.GetProperty("leader").GetBoolean() != false || !frozen.Output.Contains(steppedDown, StringComparison.Ordinal)))
            await Task.Delay(100);
        var health = (await frozen.HealthAsync())!.Value;
        Assert.False(health.GetProperty("leader").GetBoolean());
        Assert.Equal(newTerm, health.GetProperty("term").GetInt64());
        Assert.Contains(steppedDown, frozen.Output, StringComparison.Ordinal);
        Assert.True((await successor.HealthAsync())!.Value.GetProperty("leader").GetBoolean());

        foreach (var id in ids)
            Assert.Equal("TASK_FINISHED", (await successor.WaitForChainAsync(id, TimeSpan.FromSeconds(120)))[^1].GetProperty("mesos_state").GetString());
        Assert.Equal(Enumerable.Range(0, 8).Select(i => $"task-{i}").Order(), Launches().Order());
    }

    private List<string> Launches()
    {
        var path = Path.Combine(_shared, "launches");
        return File.Exists(path) ? File.ReadAllLines(path).Where(line => line.Length > 0).ToList() : [];
    }
}

public sealed class PostgresScaleOutTests : ScaleOutTests
{
    private readonly string _schema = TestServices.UniqueName("scale");

    protected override async Task<string> CreateStoreAsync() => "postgres:" + await TestServices.CreatePostgresSchemaAsync(_schema);

    protected override Task DropStoreAsync() => TestServices.DropPostgresSchemaAsync(_schema);
}

public sealed class RedisScaleOutTests : ScaleOutTests
{
    private readonly string _prefix = TestServices.UniqueName("scale") + ":";

    protected override Task<string> CreateStoreAsync() => Task.FromResult($"redis:{TestServices.RedisConfiguration},prefix={_prefix}");

    protected override Task DropStoreAsync() => TestServices.DropRedisPrefixAsync(_prefix);
}
