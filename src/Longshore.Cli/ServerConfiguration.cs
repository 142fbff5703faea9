using System.CommandLine;
using System.CommandLine.Parsing;
using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;

namespace Longshore.Cli;

/// <summary>
/// Where each <c>longshore server</c> setting comes from: the command line, else its <c>LONGSHORE_</c> environment
/// variable, else the configuration file, else the option's default.
/// <para>
/// Every option declared on the server command takes part, with nothing to list anywhere else: its file key and variable
/// are derived from its name (<c>--kill-grace</c> is the key <c>KillGrace</c> and the variable <c>LONGSHORE_KILL_GRACE</c>),
/// and the values found in the environment and the file are handed to the command-line parser as if they had been typed,
/// so every source is converted and checked by the same parser. An option whose name has the word key, token, secret or
/// password in it (and is not a -file, -dir or -name) is a secret: <c>--print-config</c> shows it masked, as it masks
/// passwords inside any value (connection strings, URLs).
/// </para>
/// </summary>
internal sealed partial class ServerConfiguration
{
    /// <summary>Read when neither <c>--config</c> nor <c>LONGSHORE_CONFIG</c> names a file, if it exists.</summary>
    public const string DefaultFile = "/etc/longshore/longshore.json";

    private const string Prefix = "LONGSHORE_";
    private const string Masked = "***";

    private readonly List<Setting> _settings = [];

    private ServerConfiguration(ParseResult result, string? file, IReadOnlyList<string> errors)
    {
        Result = result;
        File = file;
        Errors = errors;
    }

    /// <summary>The parse of the command line plus every setting taken from the environment or the file.</summary>
    public ParseResult Result { get; }

    /// <summary>The configuration file read, if any.</summary>
    public string? File { get; }

    /// <summary>Every problem with the file or a value from it or the environment, each naming where it came from.</summary>
    public IReadOnlyList<string> Errors { get; }

    /// <summary>The file key of an option: <c>--kill-grace</c> is <c>KillGrace</c> (matched ignoring case).</summary>
    public static string Key(Option option) =>
        string.Concat(Words(option).Select(word => char.ToUpperInvariant(word[0]) + word[1..]));

    /// <summary>The environment variable of an option: <c>--kill-grace</c> is <c>LONGSHORE_KILL_GRACE</c>.</summary>
    public static string Variable(Option option) => Prefix + string.Join('_', Words(option)).ToUpperInvariant();

    /// <summary>
    /// Takes every option of <paramref name="command"/> but <paramref name="excluded"/> that the command line left out from
    /// the environment or the file named by <paramref name="config"/>, and parses again with them.
    /// </summary>
    public static ServerConfiguration Load(ParseResult parsed, Command command, Option<string?> config, IReadOnlyCollection<Option> excluded,
        Func<string, string?> environment)
    {
        var errors = new List<string>();
        var (file, values) = ReadFile(parsed, config, environment, errors);
        var options = command.Options.Where(option => !excluded.Contains(option) && option != config).ToList();
        if (values is not null)
            errors.AddRange(UnknownKeys(values, options, file!));

        var settings = new List<Setting>();
        var added = new List<string>();
        foreach (var option in options)
        {
            if (parsed.GetResult(option) is { Implicit: false })
            {
                settings.Add(new Setting(option, "command line"));
                continue;
            }

            var (source, found) = environment(Variable(option)) is { Length: > 0 } variable
                ? (Variable(option), IsList(option) ? variable.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [variable])
                : FromFile(values?.GetSection(Key(option)), option, file, errors);
            if (found is null)
            {
                settings.Add(new Setting(option, "default"));
                continue;
            }

            var tokens = found.Select(value => $"{option.Name}={value}").ToList();
            // Checked alone first, so an error names the variable or the key instead of a flag nobody typed.
            if (command.Parse(tokens).Errors.FirstOrDefault(error => error.SymbolResult is OptionResult result && result.Option == option) is { } error)
            {
                errors.Add($"{(source == "file" ? $"{Key(option)} in {file}" : source)}: {MaskIn(option, error.Message, found)}");
                continue;
            }

            settings.Add(new Setting(option, source));
            added.AddRange(tokens);
        }

        var combined = added.Count == 0 ? parsed : parsed.RootCommandResult.Command.Parse([.. parsed.Tokens.Select(token => token.Value), .. added]);
        errors.AddRange(combined.Errors.Select(error => error.Message));
        var configuration = new ServerConfiguration(combined, file, errors);
        configuration._settings.AddRange(settings);
        return configuration;
    }

    /// <summary>
    /// Writes the effective settings as a configuration file (JSON with comments, which <c>--config</c> reads), each with
    /// the source it came from; secrets masked.
    /// </summary>
    public void Print(TextWriter output)
    {
        var version = typeof(ServerConfiguration).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        output.WriteLine($"// longshore {version}: effective server settings and where each comes from.");
        output.WriteLine($"// Precedence: command line > environment ({Prefix}*) > file ({File ?? "none read"}) > default. Secrets are masked.");
        output.WriteLine("{");
        var width = _settings.Max(setting => Key(setting.Option).Length);
        for (var i = 0; i < _settings.Count; i++)
        {
            var (option, source) = _settings[i];
            var line = $"  \"{Key(option)}\": {new string(' ', width - Key(option).Length)}{Json(option)}{(i < _settings.Count - 1 ? "," : "")}";
            output.WriteLine($"{line.PadRight(width + 40)} // {source}");
        }

        output.WriteLine("}");
    }

    private string Json(Option option)
    {
        var found = Result.GetResult(option);
        var value = found is null ? (option.HasDefaultValue ? option.GetDefaultValue() : null) : found.GetValueOrDefault<object?>();
        return value switch
        {
            null => IsList(option) ? "[]" : "null",
            string text => JsonSerializer.Serialize(Mask(option, text)),
            IEnumerable<string> texts => JsonSerializer.Serialize(texts.Select(text => Mask(option, text))),
            _ => JsonSerializer.Serialize(value),
        };
    }

    /// <summary>A secret option's value wholly, and a password inside any other value (connection string, URL).</summary>
    internal static string Mask(Option option, string text) =>
        IsSecret(option) ? (text.Length == 0 ? text : Masked) : UrlPassword().Replace(PasswordPairs().Replace(text, $"$1={Masked}"), $"$1:{Masked}@");

    /// <summary>A parser's message about <paramref name="values"/>, which it quotes, with whatever is secret in them masked.</summary>
    private static string MaskIn(Option option, string message, IEnumerable<string> values) =>
        values.Where(value => value.Length > 0).Aggregate(message, (text, value) => text.Replace(value, Mask(option, value), StringComparison.Ordinal));

    private static bool IsSecret(Option option)
    {
        var words = Words(option);
        return words.Any(word => word is "key" or "token" or "tokens" or "secret" or "password") && words[^1] is not ("file" or "dir" or "name");
    }

    private static bool IsList(Option option) => option.Arity.MaximumNumberOfValues > 1;

    private static string[] Words(Option option) => option.Name.TrimStart('-').Split('-', StringSplitOptions.RemoveEmptyEntries);

    private static (string? File, IConfiguration? Values) ReadFile(ParseResult parsed, Option<string?> config, Func<string, string?> environment,
        List<string> errors)
    {
        var named = parsed.GetValue(config) ?? (environment(Prefix + "CONFIG") is { Length: > 0 } variable ? variable : null);
        var path = named ?? (System.IO.File.Exists(DefaultFile) ? DefaultFile : null);
        if (path is null)
            return (null, null);
        path = Path.GetFullPath(path);
        if (!System.IO.File.Exists(path))
        {
            errors.Add($"config: '{path}' does not exist");
            return (path, null);
        }

        try
        {
            return (path, new ConfigurationBuilder().AddJsonFile(path, optional: false, reloadOnChange: false).Build());
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or IOException or UnauthorizedAccessException)
        {
            errors.Add($"config: '{path}' could not be read: {e.GetBaseException().Message}");
            return (path, null);
        }
    }

    private static (string Source, IReadOnlyList<string>? Values) FromFile(IConfigurationSection? section, Option option, string? file, List<string> errors)
    {
        if (section is null)
            return ("file", null);
        var children = section.GetChildren().ToList();
        if (children.Count == 0)
            return ("file", section.Value is null ? null : [section.Value]);
        if (IsList(option) && children.All(child => !child.GetChildren().Any()))
            return ("file", children.Select(child => child.Value ?? "").ToList());
        errors.Add($"{section.Key} in {file}: must be {(IsList(option) ? "a list of values" : "a single value, not a list or an object")}");
        return ("file", null);
    }

    private static IEnumerable<string> UnknownKeys(IConfiguration values, IReadOnlyList<Option> options, string file)
    {
        var keys = options.Select(Key).ToList();
        foreach (var section in values.GetChildren())
        {
            if (keys.Contains(section.Key, StringComparer.OrdinalIgnoreCase))
                continue;
            var near = keys.Select(key => (Key: key, Distance: Distance(key.ToUpperInvariant(), section.Key.ToUpperInvariant())))
                .Where(candidate => candidate.Distance <= 3).OrderBy(candidate => candidate.Distance).Select(candidate => candidate.Key).FirstOrDefault();
            yield return $"{section.Key} in {file}: unknown key{(near is null ? "" : $"; did you mean {near}?")} "
                + "(keys are the server options without dashes, e.g. --kill-grace is KillGrace; longshore server --print-config lists them all)";
        }
    }

    private static int Distance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var diagonal = row[0];
            row[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }

        return row[b.Length];
    }

    // Key=value pairs whose key names a password (Npgsql's Password, Redis's password, SSL Password, Pwd), quoted or not.
    [GeneratedRegex("""(?i)([^;,=]*(?:password|pwd)\s*)=\s*('(?:[^']|'')*'|"(?:[^"]|"")*"|[^;,]*)""")]
    private static partial Regex PasswordPairs();

    // user:password@ in a URL.
    [GeneratedRegex("""(://[^:/@\s]*):[^@/\s]*@""")]
    private static partial Regex UrlPassword();

    private sealed record Setting(Option Option, string Source);
}
