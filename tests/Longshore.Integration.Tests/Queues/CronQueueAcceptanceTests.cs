using System.Globalization;
using System.Text.Json;
using Longshore.Core.Queues;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;
using Longshore.Sources.Cron;
using Longshore.Storage.Sqlite;

namespace Longshore.Integration.Tests.Queues;

/// <summary>
/// The cron source's acceptance run on a fake clock, through the real poll loop and the real store: 500 fires in
/// batches of 7 become 72 tasks carrying every fire time once, also across a restart of the poller on the same store.
/// </summary>
public sealed class CronQueueAcceptanceTests() : LocalStoreTests(Start)
{
    private static readonly DateTimeOffset Start = TestClock.Now(TimeSpan.FromMinutes(1));

    private SqliteTaskStore Store => Local.Store;

    private QueuePoller NewPoller() => Local.NewPoller(new CronSource());

    [Fact]
    public async Task FiveHundredFires_InBatchesOfSeven_Become72Tasks_EachFireOnce_AcrossARestart()
    {
        var queue = new StoredQueue
        {
            Id = "tick",
            Template = new TaskDefinition { Id = "tick", Cmd = "echo $HIPPO_DATA", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } },
            CreatedAt = Start,
            Block = new QueueBlock
            {
                Type = "cron",
                BatchSize = 7,
                Settings = new() { ["cron"] = JsonSerializer.SerializeToElement(new Dictionary<string, string> { ["cronstring"] = "* * * * * *", ["maxbacklog"] = "1000" }) },
            },
        };
        Assert.True(await Store.CreateQueueAsync(queue));

        // 500 seconds pass unpolled: 490 missed fires are replayed, 10 are on time.
        Time.Advance(TimeSpan.FromSeconds(500));
        await NewPoller().PollAsync((await Store.GetQueueAsync("tick"))!);
        await NewPoller().PollAsync((await Store.GetQueueAsync("tick"))!);
        var afterRestart = await RunsAsync();
        Time.Advance(TimeSpan.FromSeconds(3));
        await NewPoller().PollAsync((await Store.GetQueueAsync("tick"))!);
        var runs = await RunsAsync();

        var batches = afterRestart.Select(r => r.Definition.Env!["HIPPO_DATA"].Split('|')).ToList();
        Assert.Equal(72, batches.Count);
        Assert.Equal(71, batches.Count(b => b.Length == 7));
        Assert.Equal(1, batches.Count(b => b.Length == 3));
        var expected = Enumerable.Range(1, 500).Select(s => Start.AddSeconds(s).ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
        Assert.Equal(expected, batches.SelectMany(b => b).Order(StringComparer.Ordinal));
        // Three seconds later: exactly the three new fires, in one batch.
        var newest = Assert.Single(runs, r => !afterRestart.Any(a => a.MesosId == r.MesosId));
        Assert.Equal(string.Join('|', Enumerable.Range(501, 3).Select(s => Start.AddSeconds(s).ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture))),
            newest.Definition.Env!["HIPPO_DATA"]);
    }

    private async Task<List<TaskRun>> RunsAsync() => [.. await Store.ListAsync(new RunQuery(1000, FamilyId: "tick"))];
}
