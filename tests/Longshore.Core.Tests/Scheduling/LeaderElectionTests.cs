using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Longshore.Core.Tests.Scheduling;

public sealed class LeaderElectionTests
{
    private static readonly LeaderOptions Options = new() { LeaseDuration = TimeSpan.FromSeconds(9) };

    /// <summary>A lease store in memory that decides exactly as the real ones do (<see cref="Fencing.Decide"/>).</summary>
    private sealed class FakeLeaseStore : ILeaseStore
    {
        private readonly Lock _lock = new();

        public Lease? Current { get; set; }

        public bool Unreachable { get; set; }

        public Task<Lease> TryAcquireLeaseAsync(string holder, TimeSpan duration, DateTimeOffset now, bool takeOver = false, CancellationToken cancellationToken = default)
        {
            if (Unreachable)
                throw new InvalidOperationException("store unreachable");
            lock (_lock)
            {
                Current = Fencing.Decide(Current, holder, duration, now, takeOver) ?? Current;
                return Task.FromResult(Current!);
            }
        }

        public Task<Lease?> GetLeaseAsync(CancellationToken cancellationToken = default) => Task.FromResult(Current);

        public Task ReleaseLeaseAsync(string holder, long term, CancellationToken cancellationToken = default)
        {
            lock (_lock)
            {
                if (Current is { } lease && lease.Holder == holder && lease.Term == term)
                    Current = lease with { ExpiresAt = DateTimeOffset.MinValue };
            }

            return Task.CompletedTask;
        }
    }

    private static async Task AdvanceAsync(FakeTimeProvider time, TimeSpan by)
    {
        for (var step = TimeSpan.Zero; step < by; step += TimeSpan.FromSeconds(1))
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(20);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        for (var i = 0; i < 1000 && !condition(); i++)
            await Task.Delay(10);
        Assert.True(condition());
    }

    [Fact]
    public async Task RunAsync_FreeLease_LeadsAndRunsWorkUnderItsTerm()
    {
        var store = new FakeLeaseStore();
        var time = TestClock.Fake();
        var election = new LeaderElection(store, Options, time, NullLogger<LeaderElection>.Instance, "a");
        long? seenTerm = null;
        using var stop = new CancellationTokenSource();
        var running = election.RunAsync(async token =>
        {
            seenTerm = Fencing.CurrentTerm;
            await Task.Delay(Timeout.Infinite, token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }, stop.Token);

        await WaitUntilAsync(() => election.IsLeader && seenTerm is not null);
        Assert.Equal((1L, 1L), (election.Term!.Value, seenTerm!.Value));
        await stop.CancelAsync();
        await running;
        Assert.False(election.IsLeader);
        Assert.Equal(DateTimeOffset.MinValue, store.Current!.ExpiresAt);
    }

    [Fact]
    public async Task RunAsync_LeaseTakenByAnother_StepsDownAndStopsTheWork()
    {
        var store = new FakeLeaseStore();
        var time = TestClock.Fake();
        var election = new LeaderElection(store, Options, time, NullLogger<LeaderElection>.Instance, "a");
        var stopped = false;
        using var stop = new CancellationTokenSource();
        var running = election.RunAsync(async token =>
        {
            await Task.Delay(Timeout.Infinite, token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            stopped = true;
        }, stop.Token);
        await WaitUntilAsync(() => election.IsLeader);

        store.Current = new Lease("b", 2, time.GetUtcNow().AddMinutes(1));
        await AdvanceAsync(time, Options.RenewInterval);

        await WaitUntilAsync(() => !election.IsLeader && stopped);
        Assert.Equal("b", election.LastSeen!.Holder);
        await stop.CancelAsync();
        await running;
    }

    [Fact]
    public async Task RunAsync_RenewalsFailing_StepsDownBeforeTheLeaseExpires()
    {
        var store = new FakeLeaseStore();
        var time = TestClock.Fake();
        var election = new LeaderElection(store, Options, time, NullLogger<LeaderElection>.Instance, "a");
        using var stop = new CancellationTokenSource();
        var running = election.RunAsync(token => Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }, TaskScheduler.Default), stop.Token);
        await WaitUntilAsync(() => election.IsLeader);
        var expires = store.Current!.ExpiresAt;

        store.Unreachable = true;
        await AdvanceAsync(time, Options.LeaseDuration * 2 / 3 + Options.RenewInterval);

        await WaitUntilAsync(() => !election.IsLeader);
        Assert.True(time.GetUtcNow() <= expires, $"stepped down at {time.GetUtcNow()}, lease ran to {expires}");
        await stop.CancelAsync();
        await running;
    }

    [Fact]
    public async Task RunAsync_WorkRefusedByTheStore_StepsDownAndLeadsAgainUnderANewTerm()
    {
        var store = new FakeLeaseStore();
        var time = TestClock.Fake();
        var election = new LeaderElection(store, Options, time, NullLogger<LeaderElection>.Instance, "a");
        var terms = new List<long>();
        using var stop = new CancellationTokenSource();
        var running = election.RunAsync(async token =>
        {
            terms.Add(Fencing.CurrentTerm!.Value);
            if (terms.Count == 1)
                throw new StaleTermException(1, 2);
            await Task.Delay(Timeout.Infinite, token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }, stop.Token);

        // The refused term is released at once, so the next attempt (without waiting) takes a new term.
        await WaitUntilAsync(() => terms.Count == 2 && election.IsLeader);
        Assert.Equal([1L, 2L], terms);
        await stop.CancelAsync();
        await running;
    }

    [Fact]
    public async Task RunAsync_WorkThatEndsByItself_StepsDown_AndWaitsARenewalBeforeLeadingAgain()
    {
        var store = new FakeLeaseStore();
        var time = TestClock.Fake();
        var election = new LeaderElection(store, Options, time, NullLogger<LeaderElection>.Instance, "a");
        var terms = new List<long>();
        using var stop = new CancellationTokenSource();
        var running = election.RunAsync(token =>
        {
            lock (terms)
                terms.Add(Fencing.CurrentTerm!.Value);
            return terms.Count == 1 ? Task.CompletedTask : Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }, TaskScheduler.Default);
        }, stop.Token);

        // Without a pause it would lead again at once, and a loop that keeps ending would spin through terms.
        await WaitUntilAsync(() => terms.Count == 1 && !election.IsLeader);
        await Task.Delay(200);
        Assert.Single(terms);
        Assert.Equal(DateTimeOffset.MinValue, store.Current!.ExpiresAt);   // released: another instance may take over meanwhile

        await AdvanceAsync(time, Options.RenewInterval);
        await WaitUntilAsync(() => terms.Count == 2 && election.IsLeader);
        Assert.Equal([1L, 2L], terms);
        await stop.CancelAsync();
        await running;
    }

    [Fact]
    public void Decide_HeldByAnotherUntilExpiry_TakenOnlyAfterWithNextTerm()
    {
        var now = TestClock.Now();
        var held = new Lease("a", 4, now.AddSeconds(5));
        Assert.Null(Fencing.Decide(held, "b", TimeSpan.FromSeconds(10), now, takeOver: false));
        Assert.Equal(new Lease("b", 5, now.AddSeconds(15)), Fencing.Decide(held, "b", TimeSpan.FromSeconds(10), now.AddSeconds(5), takeOver: false));
        Assert.Equal(new Lease("a", 4, now.AddSeconds(10)), Fencing.Decide(held, "a", TimeSpan.FromSeconds(10), now, takeOver: false));
        Assert.Equal(5, Fencing.Decide(held, "b", TimeSpan.FromSeconds(10), now, takeOver: true)!.Term);
    }

    [Fact]
    public void Validate_LeaseOutOfRange_NamesTheSetting()
    {
        Assert.Contains("leader-lease", Assert.Single(new LeaderOptions { LeaseDuration = TimeSpan.FromMilliseconds(500) }.Validate()), StringComparison.Ordinal);
        Assert.Empty(new LeaderOptions().Validate());
    }
}
