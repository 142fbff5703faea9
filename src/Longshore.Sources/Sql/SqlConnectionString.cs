using System.Data.Common;
using Microsoft.Data.Sqlite;
using MySqlConnector;
using Npgsql;

namespace Longshore.Sources.Sql;

/// <summary>
/// Turns Hippo's <c>jdbc:postgresql://user:pass@host:port/db</c> (also <c>jdbc:mysql://</c>, <c>jdbc:mariadb://</c>,
/// <c>jdbc:sqlite:PATH</c>; the <c>jdbc:</c> is optional, as in Hippo) or a native connection string plus a driver name
/// into an open-able connection.
/// </summary>
public sealed record SqlConnectionString(string Driver, string Native)
{
    public static readonly string[] Drivers = ["postgresql", "mysql", "sqlite"];

    /// <returns>The parsed form, or an error naming the setting (never repeating the connection string, which holds a password).</returns>
    public static (SqlConnectionString? Value, string? Error) Parse(string text, string? driver)
    {
        if (text.StartsWith("jdbc:sqlite:", StringComparison.Ordinal))
            return (new SqlConnectionString("sqlite", new SqliteConnectionStringBuilder { DataSource = text["jdbc:sqlite:".Length..], Mode = SqliteOpenMode.ReadOnly }.ToString()), null);
        var url = text.StartsWith("jdbc:", StringComparison.Ordinal) ? text[5..]
            : text.StartsWith("postgresql://", StringComparison.Ordinal) || text.StartsWith("mysql://", StringComparison.Ordinal) || text.StartsWith("mariadb://", StringComparison.Ordinal) ? text
            : null;
        if (url is not null)
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("postgresql" or "mysql" or "mariadb") || uri.AbsolutePath.Length < 2)
                return (null, "queue.sqlquery.conn_string: must look like jdbc:postgresql://user:pass@host:port/db (or jdbc:mysql://, jdbc:mariadb://, jdbc:sqlite:PATH)");
            var user = Uri.UnescapeDataString(uri.UserInfo.Split(':', 2)[0]);
            var password = uri.UserInfo.Contains(':', StringComparison.Ordinal) ? Uri.UnescapeDataString(uri.UserInfo.Split(':', 2)[1]) : string.Empty;
            var database = Uri.UnescapeDataString(uri.AbsolutePath[1..]);
            return uri.Scheme == "postgresql"
                ? (new SqlConnectionString("postgresql", new NpgsqlConnectionStringBuilder
                    { Host = uri.Host, Port = uri.Port > 0 ? uri.Port : 5432, Username = user, Password = password, Database = database }.ToString()), null)
                : (new SqlConnectionString("mysql", new MySqlConnectionStringBuilder
                    { Server = uri.Host, Port = (uint)(uri.Port > 0 ? uri.Port : 3306), UserID = user, Password = password, Database = database }.ToString()), null);
        }

        if (string.IsNullOrEmpty(driver) || !Drivers.Contains(driver))
            return (null, "queue.sqlquery.driver: must be one of postgresql, mysql, sqlite for a native connection string");
        try
        {
            DbConnectionStringBuilder builder = driver switch
            {
                "postgresql" => new NpgsqlConnectionStringBuilder(text),
                "mysql" => new MySqlConnectionStringBuilder(text),
                _ => new SqliteConnectionStringBuilder(text) { Mode = SqliteOpenMode.ReadOnly },
            };
            return (new SqlConnectionString(driver, builder.ToString()), null);
        }
        catch (ArgumentException)
        {
            return (null, $"queue.sqlquery.conn_string: is not a valid {driver} connection string");
        }
    }

    public DbConnection Create() => Driver switch
    {
        "postgresql" => new NpgsqlConnection(Native),
        "mysql" => new MySqlConnection(Native),
        _ => new SqliteConnection(Native),
    };

    /// <summary>The identifier quoted for this database.</summary>
    public string Quote(string identifier) => Driver == "mysql" ? $"`{identifier}`" : $"\"{identifier}\"";
}
