using System.Text.Json;
using Longshore.Core.Queues;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;
using Longshore.Storage.Sqlite;

namespace Longshore.Integration.Tests.Queues;

/// <summary>The poll loop's lease renewal (<see cref="ILeasingSource"/>) through the real store, with a fake leasing source.</summary>
public sealed class LeaseRenewalTests() : LocalStoreTests(Start)
{
    private static readonly DateTimeOffset Start = TestClock.Now(TimeSpan.FromMinutes(1));
    private readonly LeasingSource _source = new();

    private SqliteTaskStore Store => Local.Store;

    private QueuePoller NewPoller() => Local.NewPoller(_source);

    [Fact]
    public async Task RenewLeases_ExtendsEveryUnsettledHandle_AndNoSettledOne_AndASourceErrorDoesNotEscape()
    {
        var queue = new StoredQueue
        {
            Id = "leased",
            Template = new TaskDefinition { Id = "leased", Cmd = "true", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } },
            CreatedAt = Start,
            Block = new QueueBlock { Type = "leasing", Settings = new() { ["leasing"] = JsonSerializer.SerializeToElement(new Dictionary<string, string>()) } },
        };
        Assert.True(await Store.CreateQueueAsync(queue));
        using var poller = NewPoller();
        await poller.PollAsync(queue);

        await poller.RenewLeasesAsync(_source, queue);
        Assert.Equal(["h1", "h2", "h3"], Assert.Single(_source.Extended).Order(StringComparer.Ordinal));

        var settled = (await Store.ListAsync(new RunQuery(10, FamilyId: "leased"))).First(r => r.Definition.Env!["HIPPO_DATA"] == "m2");
        Assert.True(await Store.SettleBatchAsync(settled.MessageKey!, acknowledged: true));
        await poller.RenewLeasesAsync(_source, queue);
        Assert.Equal(["h1", "h3"], _source.Extended[1].Order(StringComparer.Ordinal));

        _source.Fail = true;
        await poller.RenewLeasesAsync(_source, queue);
        Assert.Equal(3, _source.Extended.Count);
    }

    private sealed class LeasingSource : IQueueSource, ILeasingSource
    {
        private bool _polled;

        public List<IReadOnlyList<string>> Extended { get; } = [];

        public bool Fail { get; set; }

        public QueueType Type { get; } = new("leasing", "leasing", "Fake leasing source", []);

        public IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> settings) => [];

        public Task<PollResult> PollAsync(StoredQueue queue, IReadOnlyDictionary<string, string> state, int max, DateTimeOffset now, CancellationToken cancellationToken = default)
        {
            IReadOnlyList<QueueMessage> messages = _polled ? [] : [new("m1", "h1"), new("m2", "h2"), new("m3", "h3")];
            _polled = true;
            return Task.FromResult(new PollResult(messages, new Dictionary<string, string>()));
        }

        public TimeSpan LeaseRenewal(StoredQueue queue) => TimeSpan.FromSeconds(1);

        public Task ExtendAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default)
        {
            Extended.Add(handles);
            return Fail ? throw new InvalidOperationException("lease service down") : Task.CompletedTask;
        }
    }
}
