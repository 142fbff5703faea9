using System.CommandLine;
using System.Text.Json.Nodes;

namespace Longshore.Cli;

/// <summary>The options every client verb shares, and the way each verb runs: one line on stderr and an exit code on failure.</summary>
internal sealed class ClientOptions
{
    public Option<string> Server { get; } = new("--server")
    {
        Description = "Longshore server address (env LONGSHORE_SERVER); the token is read from LONGSHORE_TOKEN",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("LONGSHORE_SERVER") is { Length: > 0 } s ? s : "http://127.0.0.1:8080",
        Recursive = true,
    };

    public Option<bool> Json { get; } = new("--json") { Description = "Print JSON instead of a table", Recursive = true };

    public void SetAction(Command command, Func<ParseResult, ApiClient, bool, CancellationToken, Task<int>> action) =>
        command.SetAction(async (result, cancellationToken) =>
        {
            try
            {
                using var client = new ApiClient(result.GetValue(Server)!, Environment.GetEnvironmentVariable("LONGSHORE_TOKEN"));
                return await action(result, client, result.GetValue(Json), cancellationToken);
            }
            catch (CliException e)
            {
                await Console.Error.WriteLineAsync("longshore: " + e.Message);
                return e.ExitCode;
            }
        });

    /// <summary>Reads a JSON document from a file, or standard input for "-".</summary>
    public static async Task<JsonNode> ReadJsonFileAsync(string path, CancellationToken cancellationToken)
    {
        string text;
        try
        {
            text = path == "-" ? await Console.In.ReadToEndAsync(cancellationToken) : await File.ReadAllTextAsync(path, cancellationToken);
        }
        catch (IOException e)
        {
            throw new CliException(ExitCodes.Usage, $"-f: cannot read '{path}': {e.Message}");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new CliException(ExitCodes.Usage, $"-f: cannot read '{path}': {e.Message}");
        }

        try
        {
            return JsonNode.Parse(text) ?? throw new CliException(ExitCodes.Usage, $"-f: '{path}' holds null, not a JSON object");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new CliException(ExitCodes.Usage, $"-f: '{path}' is not valid JSON: {e.Message}");
        }
    }
}
