using Longshore.Sources.Sql;
using Npgsql;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>The real PostgreSQL and Redis the suite uses (scripts/setup-services.sh), and unique names on them per test.</summary>
public static class TestServices
{
    public static string PostgresUrl { get; } = Environment.GetEnvironmentVariable("LONGSHORE_TEST_POSTGRES") ?? "jdbc:postgresql://longshore:longshore@127.0.0.1:5432/longshore_test";

    public static string RedisConfiguration { get; } = Environment.GetEnvironmentVariable("LONGSHORE_TEST_REDIS") ?? "127.0.0.1:6379";

    public static string MySqlUrl { get; } = Environment.GetEnvironmentVariable("LONGSHORE_TEST_MYSQL") ?? "jdbc:mysql://longshore:longshore@127.0.0.1:3306/longshore_test";

    /// <summary>An Npgsql connection string for the test database.</summary>
    public static string Postgres => SqlConnectionString.Parse(PostgresUrl, "postgresql").Value!.Native;

    /// <summary>A MySqlConnector connection string for the test database (MariaDB here).</summary>
    public static string MySql => SqlConnectionString.Parse(MySqlUrl, "mysql").Value!.Native;

    public static string UniqueName(string prefix) => $"{prefix}_{Guid.NewGuid():N}"[..(prefix.Length + 17)];

    /// <summary>Creates a schema of its own and returns a connection string whose search path is that schema.</summary>
    public static async Task<string> CreatePostgresSchemaAsync(string schema)
    {
        await using (var connection = new NpgsqlConnection(Postgres))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE SCHEMA \"{schema}\";", connection);
            await command.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(Postgres) { SearchPath = schema }.ConnectionString;
    }

    /// <summary>Deletes every key under the prefix.</summary>
    public static async Task DropRedisPrefixAsync(string prefix)
    {
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(RedisConfiguration);
        var server = redis.GetServers()[0];
        var db = redis.GetDatabase();
        await foreach (var key in server.KeysAsync(pattern: prefix + "*", pageSize: 1000))
            await db.KeyDeleteAsync(key);
    }

    public static async Task DropPostgresSchemaAsync(string schema)
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(Postgres);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE;", connection);
        await command.ExecuteNonQueryAsync();
    }
}
