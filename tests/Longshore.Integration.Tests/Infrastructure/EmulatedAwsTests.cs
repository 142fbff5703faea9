namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>A real server and an AWS SDK client of the emulator, both made fresh per test.</summary>
public abstract class EmulatedAwsTests<TClient>(Func<TClient> newClient) : IAsyncLifetime where TClient : IDisposable
{
    protected TClient Client { get; private set; } = default!;

    protected LongshoreServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Client = newClient();
        Server = await LongshoreServer.StartAsync("--retry-backoff-base", "0.2");
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        Client.Dispose();
    }
}
