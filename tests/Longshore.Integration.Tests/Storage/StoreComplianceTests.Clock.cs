using System.Diagnostics;
using Longshore.Core.Storage;

namespace Longshore.Integration.Tests.Storage;

/// <summary>
/// Instances whose clocks disagree with each other and with the store server's: every instance keeps time by the
/// store's clock (<see cref="StoreClock"/>), so a lease one instance writes is judged alike by another.
/// </summary>
public abstract partial class StoreComplianceTests
{
    private static readonly TimeSpan SkewLease = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task GetServerTimeAsync_ReadsTheServersClock_WhichHereIsTheMachinesClock()
    {
        var before = TimeProvider.System.GetUtcNow();
        var server = await Store.GetServerTimeAsync();
        var after = TimeProvider.System.GetUtcNow();

        // The servers run on this machine, on loopback: their clock is this machine's, read between before and after.
        Assert.InRange(server, before - TimeSpan.FromMilliseconds(50), after + TimeSpan.FromMilliseconds(50));
    }

    [Theory]
    [InlineData(30)]
    [InlineData(-30)]
    public async Task StoreClock_OnAMachineWhoseClockIsOff_ShowsTheServersTime(int skewSeconds)
    {
        var clock = new StoreClock(new SkewedTimeProvider(TimeSpan.FromSeconds(skewSeconds)), Store);

        var offset = await clock.SyncAsync();

        Assert.InRange(offset.TotalSeconds, -skewSeconds - 0.1, -skewSeconds + 0.1);
        Assert.InRange((clock.GetUtcNow() - TimeProvider.System.GetUtcNow()).Duration(), TimeSpan.Zero, TimeSpan.FromMilliseconds(100));
    }

    [Theory]
    // The leader's clock behind the follower's: judged by its own clock, the follower would take a live lease at once.
    [InlineData(-30, 30)]
    // The leader's clock ahead: judged by its own clock, the follower would wait a minute past the lease's end.
    [InlineData(30, -30)]
    public async Task Lease_InstanceClocksSkewed30sFromTheServer_HeldWhileRenewed_TakenOneLeaseAfterTheLastRenewal(int leaderSkew, int followerSkew)
    {
        var follower = await OpenAnotherAsync();
        var leaderClock = new StoreClock(new SkewedTimeProvider(TimeSpan.FromSeconds(leaderSkew)), Store);
        var followerClock = new StoreClock(new SkewedTimeProvider(TimeSpan.FromSeconds(followerSkew)), follower);
        await leaderClock.SyncAsync();
        await followerClock.SyncAsync();

        var lease = await Store.TryAcquireLeaseAsync("leader", SkewLease, leaderClock.GetUtcNow());
        Assert.Equal("leader", lease.Holder);
        // What the follower would decide by its own clock: the hazard the store clock removes.
        var ownClock = followerClock.GetUtcNow() - followerClock.Offset;
        Assert.Equal(followerSkew > leaderSkew, Fencing.Decide(lease, "follower", SkewLease, ownClock, takeOver: false) is not null);

        var lastRenewal = Stopwatch.GetTimestamp();
        var renewing = Stopwatch.StartNew();
        while (renewing.Elapsed < SkewLease * 1.5)
        {
            Assert.Equal("leader", (await follower.TryAcquireLeaseAsync("follower", SkewLease, followerClock.GetUtcNow())).Holder);
            lastRenewal = Stopwatch.GetTimestamp();
            Assert.Equal("leader", (await Store.TryAcquireLeaseAsync("leader", SkewLease, leaderClock.GetUtcNow())).Holder);
            await Task.Delay(200);
        }

        Lease taken;
        do
        {
            await Task.Delay(50);
            taken = await follower.TryAcquireLeaseAsync("follower", SkewLease, followerClock.GetUtcNow());
        }
        while (taken.Holder != "follower" && Stopwatch.GetElapsedTime(lastRenewal) < SkewLease + TimeSpan.FromSeconds(45));

        var after = Stopwatch.GetElapsedTime(lastRenewal);
        Assert.Equal(("follower", lease.Term + 1), (taken.Holder, taken.Term));
        // Not before the lease ran out, and long before a 60 s misjudgement would have let the follower in.
        Assert.InRange(after, SkewLease - TimeSpan.FromMilliseconds(100), SkewLease + TimeSpan.FromSeconds(10));
    }
}
