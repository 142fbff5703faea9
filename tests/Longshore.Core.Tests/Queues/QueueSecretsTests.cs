using System.Security.Cryptography;
using System.Text.Json;
using Longshore.Core.Queues;
using Longshore.Sources.Redis;

namespace Longshore.Core.Tests.Queues;

public sealed class QueueSecretsTests
{
    private static QueueBlock RedisBlock(string password) => new()
    {
        Type = "redis",
        Settings = new() { ["redis"] = JsonSerializer.SerializeToElement(new Dictionary<string, string> { ["name"] = "jobs", ["password"] = password }) },
    };

    [Fact]
    public void Protect_EncryptsOnlySecretSettings_AndRevealGivesThemBack()
    {
        var secrets = new QueueSecrets(QueueSecrets.NewKey(), [new RedisSource()]);

        var stored = secrets.Protect(RedisBlock("hunter2-long-password"));

        Assert.StartsWith("enc:v1:", stored.SettingsOf("redis")["password"], StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", stored.Settings!["redis"].GetRawText(), StringComparison.Ordinal);
        Assert.Equal("jobs", stored.SettingsOf("redis")["name"]);
        Assert.Equal("hunter2-long-password", secrets.Reveal(stored).SettingsOf("redis")["password"]);
        Assert.Equal(stored.SettingsOf("redis")["password"], secrets.Protect(stored).SettingsOf("redis")["password"]);
    }

    [Fact]
    public void Encrypt_UsesAFreshNonce_AndAnotherKeyOrATamperedValueFails()
    {
        var secrets = new QueueSecrets(QueueSecrets.NewKey(), []);
        var other = new QueueSecrets(QueueSecrets.NewKey(), []);

        var first = secrets.Encrypt("same");
        var second = secrets.Encrypt("same");
        var tampered = first[..^4] + (first[^4] == 'A' ? 'B' : 'A') + first[^3..];

        Assert.NotEqual(first, second);
        Assert.ThrowsAny<CryptographicException>(() => other.Decrypt(first));
        Assert.ThrowsAny<Exception>(() => secrets.Decrypt(tampered));
    }
}
