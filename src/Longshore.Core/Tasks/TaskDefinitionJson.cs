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
            (EnvJsonConverter.ValueType, "must be an object whose values are strings, numbers or true/false"),
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

/// <summary>
/// Reads <c>env</c> as Hippo does: a value sent as a number or as true/false is kept as its text (Python's <c>str()</c>:
/// <c>5</c>, <c>1.5</c>, <c>True</c>, <c>False</c>), so clients that send <c>{"RETRIES": 3}</c> keep working.
/// </summary>
public sealed class EnvJsonConverter : JsonConverter<Dictionary<string, string>>
{
    /// <summary>Named in the error of a value of another kind, so <see cref="TaskDefinitionJson.Describe"/> can explain it.</summary>
    public const string ValueType = "Longshore.Core.Tasks.EnvValue";

    public override Dictionary<string, string>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Null)
            return null;
        if (reader.TokenType != JsonTokenType.StartObject)
            throw Refused(ValueType, "$.env");
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var name = reader.GetString()!;
            reader.Read();
            try
            {
                values[name] = reader.TokenType switch
                {
                    JsonTokenType.String => reader.GetString()!,
                    JsonTokenType.Number => System.Text.Encoding.UTF8.GetString(reader.HasValueSequence ? System.Buffers.BuffersExtensions.ToArray(reader.ValueSequence) : reader.ValueSpan),
                    JsonTokenType.True => "True",
                    JsonTokenType.False => "False",
                    _ => throw Refused(ValueType, "$.env." + name),
                };
            }
            catch (InvalidOperationException)
            {
                // A string the reader cannot decode (a lone surrogate escape).
                throw Refused("System.String", "$.env." + name);
            }
        }

        return values;
    }

    public override void Write(Utf8JsonWriter writer, Dictionary<string, string> value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        foreach (var (name, text) in value)
            writer.WriteString(name, text);
        writer.WriteEndObject();
    }

    /// <summary>An error that names its own path: the serializer cannot see inside this converter to name the variable.</summary>
    private static JsonException Refused(string type, string path) => new($"The JSON value could not be converted to {type}.", path, null, null);
}
