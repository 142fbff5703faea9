using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;

namespace Longshore.Storage.Sqlite;

/// <summary>
/// The writer connection's prepared statements, kept by SQL text for as long as the connection. Microsoft.Data.Sqlite
/// prepares a command's SQL again for every new command; the writer runs the same few statements for every write, and
/// preparing them (the combined transition above all) cost about a third of its time. Only the one writer connection is
/// registered: a read runs on a pooled connection of its own and prepares as before.
/// </summary>
internal sealed class WriterStatements : IDisposable
{
    /// <summary>Beyond this many texts (SQL built from lists of varying length) a command is prepared and disposed as before.</summary>
    private const int Capacity = 128;

    private static readonly ConditionalWeakTable<SqliteConnection, WriterStatements> Registered = [];

    private readonly SqliteConnection _connection;
    private readonly Dictionary<string, Kept> _commands = new(StringComparer.Ordinal);

    private WriterStatements(SqliteConnection connection) => _connection = connection;

    public static WriterStatements Register(SqliteConnection connection)
    {
        var statements = new WriterStatements(connection);
        Registered.AddOrUpdate(connection, statements);
        return statements;
    }

    /// <summary>
    /// The kept command for <paramref name="sql"/> on a registered connection, bound to <paramref name="transaction"/>, with
    /// the parameters of its last use (the same SQL names the same ones); null on any other connection, or when full.
    /// Disposing it (as every caller does) keeps it.
    /// </summary>
    public static SqliteCommand? Find(SqliteConnection connection, SqliteTransaction? transaction, string sql)
    {
        if (!Registered.TryGetValue(connection, out var statements))
            return null;
        if (!statements._commands.TryGetValue(sql, out var command))
        {
            if (statements._commands.Count >= Capacity)
                return null;
#pragma warning disable CA2100 // The SQL is what the store's own callers pass to CreateCommand.
            command = new Kept(sql, connection);
#pragma warning restore CA2100
            statements._commands[sql] = command;
        }

        command.Transaction = transaction;
        return command;
    }

    public void Dispose()
    {
        Registered.Remove(_connection);
        foreach (var command in _commands.Values)
            command.Release();
        _commands.Clear();
    }

    private sealed class Kept(string sql, SqliteConnection connection) : SqliteCommand(sql, connection)
    {
        private bool _released;

        public void Release()
        {
            _released = true;
            Dispose();
        }

        protected override void Dispose(bool disposing)
        {
            if (_released)
                base.Dispose(disposing);
        }
    }
}
