using System.Data;
using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Longshore.Core.Queues;

namespace Longshore.Sources.Sql;

/// <summary>
/// <c>sqlquery</c>: rows of a query whose <c>filter_field</c> is above the watermark become messages: the row as a JSON
/// array of its values in column order (Hippo's payload), or with <c>row_format</c> <c>object</c> as an object of
/// column → value. The watermark — the largest <c>filter_field</c> seen, starting at <c>filter_val</c>, or at the first
/// row when that is empty (Hippo's default) — is stored in the same transaction as the tasks made from the rows, so a
/// row becomes a task once. The query runs in a read-only transaction, wrapped as
/// <c>SELECT * FROM (query) q WHERE q.field &gt; @watermark ORDER BY q.field LIMIT n</c>, with the watermark as a parameter.
/// On PostgreSQL, <c>notify_channel</c> (opt-in) makes a poll that found nothing wait up to <c>frequency_seconds</c>
/// for a <c>NOTIFY</c> on that channel (sent by the writer, or by a trigger), so new rows are taken as they are committed.
/// </summary>
public sealed partial class SqlQuerySource : IQueueSource, IAsyncDisposable
{
    private const string Watermark = "watermark";

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<Task<PostgresNotifications>>> _listeners = new(StringComparer.Ordinal);

    public QueueType Type { get; } = new("sqlquery", "sqlquery", "SQL query (PostgreSQL, MySQL/MariaDB, SQLite)",
    [
        new QueueInput("conn_string", "Connection string (jdbc:postgresql://user:pass@host:port/db, or native with a driver)", Secret: true),
        new QueueInput("driver", "Driver for a native connection string: postgresql, mysql or sqlite", Required: false),
        new QueueInput("query", "Query (a SELECT; its rows must include the filter field)"),
        new QueueInput("filter_field", "Column that grows with new rows (an id or a timestamp)"),
        new QueueInput("filter_val", "Start after this value (empty: from the first row)", "", Required: false),
        new QueueInput("row_format", "Payload of a row: array (its values in column order, as Hippo) or object (column: value)", "array", Required: false),
        new QueueInput("notify_channel", "PostgreSQL only: a channel to LISTEN on; a NOTIFY on it starts a poll at once", Required: false),
    ]);

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,62}\\z")]
    private static partial Regex Identifier();

    public IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> settings)
    {
        var errors = new List<string>();
        if (settings.GetValueOrDefault("conn_string") is { Length: > 0 } text && SqlConnectionString.Parse(text, settings.GetValueOrDefault("driver")).Error is { } error)
            errors.Add(error);
        if (settings.GetValueOrDefault("filter_field") is { Length: > 0 } field && !Identifier().IsMatch(field))
            errors.Add("queue.sqlquery.filter_field: must be a plain column name (letters, digits, '_')");
        if (settings.GetValueOrDefault("notify_channel") is { Length: > 0 } channel)
        {
            if (!Identifier().IsMatch(channel))
                errors.Add("queue.sqlquery.notify_channel: must be a plain channel name (letters, digits, '_')");
            else if (settings.GetValueOrDefault("conn_string") is { Length: > 0 } conn && SqlConnectionString.Parse(conn, settings.GetValueOrDefault("driver")).Value is { Driver: not "postgresql" })
                errors.Add("queue.sqlquery.notify_channel: LISTEN/NOTIFY is PostgreSQL's; leave it empty for other databases");
        }

        if (settings.GetValueOrDefault("query") is { Length: > 0 } query && (query.Contains(';', StringComparison.Ordinal) || query.Length > 10_000))
            errors.Add("queue.sqlquery.query: must be one SELECT of at most 10000 characters, without ';'");
        if (settings.GetValueOrDefault("row_format") is { Length: > 0 } format && format is not ("array" or "object"))
            errors.Add($"queue.sqlquery.row_format: must be array or object, got '{format}'");
        return errors;
    }

    public async Task<PollResult> PollAsync(StoredQueue queue, IReadOnlyDictionary<string, string> state, int max, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        var settings = Type.SettingsOf(queue.Block);
        var connection = SqlConnectionString.Parse(settings["conn_string"], settings.GetValueOrDefault("driver")).Value!;
        var field = settings["filter_field"];
        var watermark = state.GetValueOrDefault(Watermark) ?? (settings.GetValueOrDefault("filter_val") is { Length: > 0 } start ? start : null);
        var asObject = settings["row_format"] == "object";
        // Listening starts before the query, so a NOTIFY for a row committed after it is kept for the wait below.
        var listener = settings.GetValueOrDefault("notify_channel") is { Length: > 0 } channel && connection.Driver == "postgresql"
            ? await ListenerAsync(queue.Id, connection.Native, channel, cancellationToken)
            : null;
        var messages = await QueryAsync(connection, settings, field, watermark, asObject, max, cancellationToken);
        if (messages.Count == 0 && listener is not null
            && await listener.WaitAsync(TimeSpan.FromSeconds(Math.Max(1, queue.Block.FrequencySeconds)), cancellationToken))
            messages = await QueryAsync(connection, settings, field, watermark, asObject, max, cancellationToken);

        var highest = messages.Count > 0 ? messages[^1].Watermark : watermark;
        // A listening poll paced itself by its wait: the next may start at once.
        return new PollResult(messages.Select(m => m.Message).ToList(), highest is null ? new Dictionary<string, string>() : new Dictionary<string, string> { [Watermark] = highest })
        {
            NextPollAt = listener is not null ? now : null,
        };
    }

    private async Task<PostgresNotifications> ListenerAsync(string queueId, string connectionString, string channel, CancellationToken cancellationToken)
    {
        var key = $"{queueId}|{channel}|{connectionString}";
        var lazy = _listeners.GetOrAdd(key, _ => new Lazy<Task<PostgresNotifications>>(() => PostgresNotifications.ListenAsync(connectionString, channel, CancellationToken.None)));
        try
        {
            var listener = await lazy.Value.WaitAsync(cancellationToken);
            if (listener.Healthy)
                return listener;
            await listener.DisposeAsync();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Could not listen: forget it so the next poll tries again, and let this one fail with the reason.
            _listeners.TryRemove(new KeyValuePair<string, Lazy<Task<PostgresNotifications>>>(key, lazy));
            throw;
        }

        _listeners.TryRemove(new KeyValuePair<string, Lazy<Task<PostgresNotifications>>>(key, lazy));
        return await ListenerAsync(queueId, connectionString, channel, cancellationToken);
    }

    private static async Task<List<(QueueMessage Message, string Watermark)>> QueryAsync(SqlConnectionString connection, IReadOnlyDictionary<string, string> settings,
        string field, string? watermark, bool asObject, int max, CancellationToken cancellationToken)
    {
        await using var db = connection.Create();
        await db.OpenAsync(cancellationToken);
        // The query only ever reads, whatever it says: MySQL takes this for the next transaction, PostgreSQL inside it.
        if (connection.Driver == "mysql")
            await ExecuteAsync(db, null, "SET SESSION TRANSACTION READ ONLY", cancellationToken);
        await using var transaction = await db.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken);
        if (connection.Driver == "postgresql")
            await ExecuteAsync(db, transaction, "SET TRANSACTION READ ONLY", cancellationToken);

        await using var command = db.CreateCommand();
        command.Transaction = transaction;
#pragma warning disable CA2100 // The user's query is their own read-only SELECT; the watermark and limit are parameters, the field a checked identifier.
        command.CommandText = $"SELECT * FROM ({settings["query"]}) q {(watermark is null ? "" : $"WHERE q.{connection.Quote(field)} > @watermark ")}ORDER BY q.{connection.Quote(field)} LIMIT @limit";
#pragma warning restore CA2100
        if (watermark is not null)
            AddParameter(command, "@watermark", Typed(watermark));
        AddParameter(command, "@limit", Math.Min(max, 10_000));

        var messages = new List<(QueueMessage, string)>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var values = new object?[reader.FieldCount];
                var row = new Dictionary<string, object?>(StringComparer.Ordinal);
                for (var i = 0; i < reader.FieldCount; i++)
                    row[reader.GetName(i)] = values[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
                messages.Add((new QueueMessage(asObject ? JsonSerializer.Serialize(row) : JsonSerializer.Serialize(values)), Text(reader.GetValue(reader.GetOrdinal(field)))));
            }
        }

        await transaction.RollbackAsync(cancellationToken);
        return messages;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var lazy in _listeners.Values.Where(l => l.IsValueCreated))
        {
            try
            {
                await (await lazy.Value).DisposeAsync();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // It never listened: nothing to close.
            }
        }
    }

    private static async Task ExecuteAsync(DbConnection db, DbTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand();
        command.Transaction = transaction;
#pragma warning disable CA2100 // Fixed statements only.
        command.CommandText = sql;
#pragma warning restore CA2100
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static void AddParameter(DbCommand command, string name, object value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value;
        command.Parameters.Add(parameter);
    }

    /// <summary>The watermark as the type it came from, so it compares with the column (numbers, times, text).</summary>
    private static object Typed(string value) =>
        long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var whole) ? whole
        : decimal.TryParse(value, NumberStyles.Number, CultureInfo.InvariantCulture, out var number) ? number
        : DateTime.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var time) ? time
        : value;

    private static string Text(object value) => value switch
    {
        DateTime time => time.ToString("O", CultureInfo.InvariantCulture),
        DateTimeOffset time => time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };
}
