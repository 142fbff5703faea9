using System.Text.RegularExpressions;

namespace Longshore.Core.Queues;

/// <summary>
/// A secret setting may say where the secret is instead of holding it: <c>${env:NAME}</c> reads the server's
/// environment variable NAME, which must start with <see cref="EnvPrefix"/>; <c>${file:NAME}</c> reads the file NAME in
/// the configured secrets folder (a plain file name, no path). Both are read at each use, so a rotated secret is picked
/// up without touching the queue. The limits keep a queue author from pointing a setting at the server's own secrets
/// (its token list, its encryption key) or at any file on the host and sending it to a server of their choosing.
/// </summary>
public sealed partial class SecretReferences(string? secretsFolder, Func<string, string?> environment)
{
    /// <summary>Only variables with this prefix can be referenced.</summary>
    public const string EnvPrefix = "LONGSHORE_SECRET_";

    private const int MaxFileBytes = 64 * 1024;

    /// <summary>No references resolve: every one is an error.</summary>
    public static SecretReferences None { get; } = new(null, _ => null);

    [GeneratedRegex(@"^\$\{(?<kind>env|file):(?<name>[^}]*)\}\z")]
    private static partial Regex Reference();

    [GeneratedRegex(@"^[A-Za-z0-9_]{1,200}\z")]
    private static partial Regex EnvName();

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}\z")]
    private static partial Regex FileName();

    public static bool IsReference(string value) => Reference().IsMatch(value);

    /// <summary>The secret a reference points to, or the value itself when it is no reference.</summary>
    /// <param name="field">The setting, e.g. <c>queue.redis.password</c>, named in errors.</param>
    /// <exception cref="SecretReferenceException">The reference breaks a rule or points at nothing.</exception>
    public string Resolve(string field, string value)
    {
        var match = Reference().Match(value);
        if (!match.Success)
            return value;
        var name = match.Groups["name"].Value;
        if (match.Groups["kind"].Value == "env")
        {
            if (!EnvName().IsMatch(name) || !name.StartsWith(EnvPrefix, StringComparison.Ordinal))
                throw new SecretReferenceException($"{field}: ${{env:NAME}} may only name a variable starting with {EnvPrefix} (letters, digits, '_'), got '{name}'");
            return environment(name) is { Length: > 0 } secret
                ? secret
                : throw new SecretReferenceException($"{field}: environment variable {name} is not set on the server");
        }

        if (secretsFolder is null)
            throw new SecretReferenceException($"{field}: ${{file:NAME}} needs the server's --secrets-dir, which is not set");
        if (!FileName().IsMatch(name))
            throw new SecretReferenceException($"{field}: ${{file:NAME}} must name a file directly in the secrets folder (letters, digits, '_', '.', '-'; no path), got '{name}'");
        var path = Path.Combine(secretsFolder, name);
        var file = new FileInfo(path);
        if (!file.Exists)
            throw new SecretReferenceException($"{field}: secrets file '{name}' does not exist in the secrets folder");
        if (file.Length > MaxFileBytes)
            throw new SecretReferenceException($"{field}: secrets file '{name}' is larger than {MaxFileBytes} bytes");
        return File.ReadAllText(path).TrimEnd('\r', '\n');
    }
}

/// <summary>A secret reference could not be resolved; the message names the setting and the rule, never a secret.</summary>
public sealed class SecretReferenceException(string message) : Exception(message);
