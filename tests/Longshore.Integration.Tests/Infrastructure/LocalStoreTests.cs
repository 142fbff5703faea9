using Microsoft.Extensions.Time.Testing;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>
/// Tests over a fresh <see cref="LocalStore"/> per test, on a fake clock that starts at <paramref name="start"/> (a
/// <see cref="TestClock"/> time, so the real time plus the suite's offset).
/// </summary>
/// <param name="synchronous">The store's <c>synchronous</c> pragma: NORMAL where durability is not what the test is about.</param>
public abstract class LocalStoreTests(DateTimeOffset start, string synchronous = "FULL") : IAsyncLifetime
{
    protected FakeTimeProvider Time { get; } = new(start);

    protected LocalStore Local { get; private set; } = null!;

    public async Task InitializeAsync() => Local = await LocalStore.OpenAsync(Time, synchronous);

    public Task DisposeAsync()
    {
        Local.Dispose();
        return Task.CompletedTask;
    }
}
