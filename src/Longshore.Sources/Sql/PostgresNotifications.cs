using Npgsql;

namespace Longshore.Sources.Sql;

/// <summary>
/// One open PostgreSQL connection that <c>LISTEN</c>s on a channel, so a poll of an empty query can wait for a
/// <c>NOTIFY</c> instead of for its next interval. A notification that comes between a poll's query and its wait is kept
/// (the wait then returns at once), so none is missed; one that comes before the query costs one extra query at most.
/// </summary>
internal sealed class PostgresNotifications : IAsyncDisposable
{
    private readonly NpgsqlConnection _connection;
    private readonly SemaphoreSlim _signal = new(0, 1);
    private readonly CancellationTokenSource _stop = new();
    private Task _listening = Task.CompletedTask;

    private PostgresNotifications(NpgsqlConnection connection) => _connection = connection;

    /// <summary>False once the connection failed: the owner opens a new listener.</summary>
    public bool Healthy => !_listening.IsCompleted;

    public static async Task<PostgresNotifications> ListenAsync(string connectionString, string channel, CancellationToken cancellationToken)
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { KeepAlive = 30 }.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        var listener = new PostgresNotifications(connection);
        connection.Notification += (_, _) => listener.Signal();
        await using (var command = new NpgsqlCommand($"LISTEN \"{channel}\"", connection))
            await command.ExecuteNonQueryAsync(cancellationToken);
        listener._listening = Task.Run(() => listener.ListenLoopAsync(), CancellationToken.None);
        return listener;
    }

    /// <summary>Returns true at the first notification (or one already kept), false after <paramref name="timeout"/>.</summary>
    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _signal.WaitAsync(timeout, cancellationToken);

    private void Signal()
    {
        try
        {
            _signal.Release();
        }
        catch (SemaphoreFullException)
        {
            // One kept notification is as good as many: the next query reads every new row.
        }
    }

    private async Task ListenLoopAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
                await _connection.WaitAsync(_stop.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or NpgsqlException or InvalidOperationException)
        {
            // A lost connection ends the loop; Healthy turns false and the source listens anew. Wake any waiter now.
            Signal();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _listening.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _connection.DisposeAsync();
        _stop.Dispose();
        _signal.Dispose();
    }
}
