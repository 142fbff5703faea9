using Longshore.Core.Queues;
using Longshore.Server.Hosting;

namespace Longshore.Server.Security;

/// <summary>Finds the key that encrypts queue secrets: given in configuration, else kept in the data folder (created once, owner-only).</summary>
public static class SecretsKey
{
    public const string FileName = "secrets.key";

    public static bool IsValid(string base64)
    {
        var buffer = new byte[64];
        return Convert.TryFromBase64String(base64.Trim(), buffer, out var length) && length == 32;
    }

    public static byte[] Load(string? configured, string dataDir)
    {
        if (!string.IsNullOrWhiteSpace(configured))
            return Convert.FromBase64String(configured.Trim());
        var path = Path.Combine(dataDir, FileName);
        if (File.Exists(path))
        {
            var stored = File.ReadAllText(path).Trim();
            if (!IsValid(stored))
                throw new OptionsException([$"secrets-key: {path} does not hold the base64 of 32 bytes; restore it, or pass the key with --secrets-key"]);
            return Convert.FromBase64String(stored);
        }

        var key = QueueSecrets.NewKey();
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var file = new FileStream(path, options))
        using (var writer = new StreamWriter(file))
            writer.Write(Convert.ToBase64String(key));
        return key;
    }
}
