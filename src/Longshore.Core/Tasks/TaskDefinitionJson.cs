using System.Text.Json;
using System.Text.Json.Serialization;

namespace Longshore.Core.Tasks;

/// <summary>Reads a task definition from a request body, turning every JSON problem into a message that names the field.</summary>
public static class TaskDefinitionJson
{
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            NumberHandling = JsonNumberHandling.Strict,
            ReadCommentHandling = JsonCommentHandling.Disallow,
            MaxDepth = 16,
        };
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    /// <summary>Parses and validates; returns the definition, or the list of errors.</summary>
    public static (T? Value, IReadOnlyList<string> Errors) Parse<T>(ReadOnlySpan<byte> body)
        where T : class
    {
        if (body.IsEmpty)
            return (null, ["body: must be a JSON object"]);
        try
        {
            var value = JsonSerializer.Deserialize<T>(body, Options);
            return value is null ? (null, ["body: must be a JSON object, got null"]) : (value, []);
        }
        catch (JsonException e)
        {
            return (null, [Describe(e)]);
        }
    }

    public static string Describe(JsonException e)
    {
        var field = FieldName(e.Path);
        var message = e.Message;
        if (message.Contains("could not be converted to", StringComparison.Ordinal))
            return $"{field}: {Expected(message)}";
        if (message.Contains("maximum configured depth", StringComparison.Ordinal))
            return $"{field}: is nested too deeply";
        return $"{field}: is not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})";
    }

    private static string FieldName(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "$")
            return "body";
        var name = path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');
        return name.Replace("['", ".", StringComparison.Ordinal).Replace("']", string.Empty, StringComparison.Ordinal).TrimStart('.');
    }

    private static string Expected(string message)
    {
        (string Type, string Expectation)[] known =
        [
            ("System.Double", "must be a number"),
            ("System.Int32", "must be a whole number in range"),
            ("System.Int64", "must be a whole number in range"),
            ("System.Boolean", "must be true or false"),
            ("System.String", "must be a string"),
            ("System.Collections.Generic.Dictionary", "must be an object whose values are strings"),
            ("System.Collections.Generic.List", "must be an array"),
            ("Longshore.", "must be an object"),
        ];
        // The type the value should have become is named right after "converted to"; match its outermost name only,
        // so a list of strings is described as an array, not as a string.
        const string marker = "could not be converted to ";
        var at = message.IndexOf(marker, StringComparison.Ordinal);
        var target = at < 0 ? message : message[(at + marker.Length)..];
        foreach (var (type, expectation) in known)
        {
            if (target.StartsWith(type, StringComparison.Ordinal))
                return expectation;
        }

        return "has a value of the wrong type";
    }
}
