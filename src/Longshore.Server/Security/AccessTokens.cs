using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Longshore.Server.Security;

public enum AccessRole
{
    Read,
    Operator,
}

/// <summary>One configured token, kept only as its SHA-256 hash.</summary>
public sealed record AccessToken(string Name, AccessRole Role, byte[] Hash);

/// <summary>
/// The bearer tokens the server accepts, read from <c>--tokens-file</c> and <c>--tokens</c> (LONGSHORE_TOKENS). One entry
/// per line (or <c>;</c>-separated in <c>--tokens</c>): <c>ROLE:NAME:TOKEN</c>, ROLE being <c>read</c> or <c>operator</c>.
/// </summary>
public sealed partial class AccessTokens
{
    public const int MinTokenLength = 16;

    private readonly IReadOnlyList<AccessToken> _tokens;

    private AccessTokens(IReadOnlyList<AccessToken> tokens) => _tokens = tokens;

    public bool Enabled => _tokens.Count > 0;

    public int Count => _tokens.Count;

    [GeneratedRegex("^[A-Za-z0-9_.@-]{1,64}\\z")]
    private static partial Regex NamePattern();

    /// <summary>Parses every source; errors name the source and line, never the token.</summary>
    public static AccessTokens Load(string? file, string? environment, List<string> errors)
    {
        var tokens = new List<AccessToken>();
        if (!string.IsNullOrEmpty(file))
        {
            string[] lines = [];
            try
            {
                lines = File.ReadAllLines(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                errors.Add($"tokens-file: cannot read '{file}': {e.Message}");
            }

            Parse(lines, $"tokens-file {file}", tokens, errors);
        }

        if (!string.IsNullOrEmpty(environment))
            Parse(environment.Split([';', '\n'], StringSplitOptions.None), "tokens", tokens, errors);
        foreach (var duplicate in tokens.GroupBy(t => t.Name, StringComparer.Ordinal).Where(g => g.Count() > 1))
            errors.Add($"tokens: the name '{duplicate.Key}' is used by {duplicate.Count()} tokens; names must be unique (they appear in the audit log)");
        return new AccessTokens(tokens);
    }

    private static void Parse(string[] lines, string source, List<AccessToken> tokens, List<string> errors)
    {
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
                continue;
            var parts = line.Split(':', 3);
            var where = $"{source} entry {i + 1}";
            if (parts.Length != 3)
            {
                errors.Add($"{where}: must be ROLE:NAME:TOKEN");
                continue;
            }

            AccessRole? role = parts[0] switch { "read" => AccessRole.Read, "operator" => AccessRole.Operator, _ => null };
            if (role is null)
                errors.Add($"{where}: role must be read or operator, got '{parts[0]}'");
            if (!NamePattern().IsMatch(parts[1]))
                errors.Add($"{where}: name must be 1 to 64 of letters, digits, '_', '.', '@' or '-'");
            if (parts[2].Length < MinTokenLength)
                errors.Add($"{where}: token must be at least {MinTokenLength} characters (e.g. from `openssl rand -hex 24`)");
            if (role is { } r && parts[2].Length >= MinTokenLength)
                tokens.Add(new AccessToken(parts[1], r, SHA256.HashData(Encoding.UTF8.GetBytes(parts[2]))));
        }
    }

    /// <summary>The token's entry, comparing hashes in constant time against every entry.</summary>
    public AccessToken? Find(string presented)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        AccessToken? found = null;
        foreach (var token in _tokens)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, token.Hash))
                found = token;
        }

        return found;
    }

    /// <summary>True when every address is a loopback one (127.0.0.0/8, ::1, localhost).</summary>
    public static bool AllLoopback(string urls) => urls.Split(';', StringSplitOptions.RemoveEmptyEntries).All(url =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri)
        && (uri.Host == "localhost" || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var address) && IPAddress.IsLoopback(address))));
}
