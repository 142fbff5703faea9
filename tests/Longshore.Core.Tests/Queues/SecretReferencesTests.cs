using System.Text.Json;
using Longshore.Core.Queues;
using Longshore.Sources.Redis;

namespace Longshore.Core.Tests.Queues;

public sealed class SecretReferencesTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("longshore-secrets-").FullName;
    private readonly Dictionary<string, string> _environment = new(StringComparer.Ordinal)
    {
        ["LONGSHORE_SECRET_REDIS"] = "from-env",
        ["LONGSHORE_TOKENS"] = "operator:me:do-not-leak",
    };

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private SecretReferences References(bool withFolder = true) => new(withFolder ? _folder : null, name => _environment.GetValueOrDefault(name));

    [Fact]
    public void Resolve_ReadsAnAllowedVariable_AndAFileInTheFolder_WithoutTheTrailingNewline()
    {
        File.WriteAllText(Path.Combine(_folder, "redis.pw"), "from-file\n");

        Assert.Equal("from-env", References().Resolve("queue.redis.password", "${env:LONGSHORE_SECRET_REDIS}"));
        Assert.Equal("from-file", References().Resolve("queue.redis.password", "${file:redis.pw}"));
        Assert.Equal("plain ${env:X} text", References().Resolve("queue.redis.password", "plain ${env:X} text"));
    }

    [Theory]
    [InlineData("${env:LONGSHORE_TOKENS}", "may only name a variable starting with LONGSHORE_SECRET_")]
    [InlineData("${env:LONGSHORE_SECRET_MISSING}", "environment variable LONGSHORE_SECRET_MISSING is not set")]
    [InlineData("${env:}", "may only name a variable")]
    [InlineData("${file:../secrets.key}", "must name a file directly in the secrets folder")]
    [InlineData("${file:/etc/passwd}", "must name a file directly in the secrets folder")]
    [InlineData("${file:.hidden}", "must name a file directly in the secrets folder")]
    [InlineData("${file:absent}", "secrets file 'absent' does not exist")]
    public void Resolve_RefusesWhatBreaksARule_NamingTheSetting(string reference, string expected)
    {
        var error = Assert.Throws<SecretReferenceException>(() => References().Resolve("queue.redis.password", reference));

        Assert.StartsWith("queue.redis.password: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("do-not-leak", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Resolve_FileReferenceWithoutASecretsFolder_IsRefused()
    {
        var error = Assert.Throws<SecretReferenceException>(() => References(withFolder: false).Resolve("queue.nats.token", "${file:token}"));

        Assert.Contains("--secrets-dir", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void QueueSecrets_KeepAReferenceAsWritten_ResolveItOnReveal_AndCheckNamesBadOnes()
    {
        var secrets = new QueueSecrets(QueueSecrets.NewKey(), [new RedisSource()], References());
        var block = new QueueBlock
        {
            Type = "redis",
            Settings = new() { ["redis"] = JsonSerializer.SerializeToElement(new Dictionary<string, string> { ["name"] = "jobs", ["password"] = "${env:LONGSHORE_SECRET_REDIS}" }) },
        };
        var broken = block with
        {
            Settings = new() { ["redis"] = JsonSerializer.SerializeToElement(new Dictionary<string, string> { ["name"] = "jobs", ["password"] = "${env:HOME}" }) },
        };

        var stored = secrets.Protect(block);

        Assert.Equal("${env:LONGSHORE_SECRET_REDIS}", stored.SettingsOf("redis")["password"]);
        Assert.Equal("from-env", secrets.Reveal(stored).SettingsOf("redis")["password"]);
        Assert.Equal("${env:LONGSHORE_SECRET_REDIS}", secrets.Unseal(stored).SettingsOf("redis")["password"]);
        Assert.Empty(secrets.CheckReferences(block));
        Assert.Equal(["queue.redis.password: ${env:NAME} may only name a variable starting with LONGSHORE_SECRET_ (letters, digits, '_'), got 'HOME'"],
            secrets.CheckReferences(broken));
    }
}
