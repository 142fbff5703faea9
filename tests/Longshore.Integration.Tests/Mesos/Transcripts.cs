using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>The recorded Mesos 1.12 exchanges (copied from the shared transcripts), read for replay.</summary>
public static class Transcripts
{
    public static string Folder { get; } = Path.Combine(AppContext.BaseDirectory, "Mesos", "Transcripts");

    public static IEnumerable<string> RawFiles => Directory.GetFiles(Folder, "*.raw").Select(Path.GetFileName).Order(StringComparer.Ordinal)!;

    /// <summary>Every entry of <c>NN-name.jsonl</c>.</summary>
    public static IReadOnlyList<JsonElement> Entries(string scenario) =>
        File.ReadLines(Path.Combine(Folder, scenario + ".jsonl")).Select(line => JsonDocument.Parse(line).RootElement.Clone()).ToArray();

    /// <summary>The recorded JSON of each record of one stream, in order.</summary>
    public static IReadOnlyList<string> Records(string scenario, string stream) =>
        Entries(scenario).Where(e => e.GetProperty("kind").GetString() == "record" && e.GetProperty("stream").GetString() == stream)
            .Select(e => e.GetProperty("json").GetString()!).ToArray();

    /// <summary>A raw SUBSCRIBE connection split into its head and its HTTP chunks (data of each, without the last empty one).</summary>
    public static (string Head, IReadOnlyList<byte[]> Chunks, bool Terminated) ReadRaw(string file)
    {
        var bytes = File.ReadAllBytes(Path.Combine(Folder, file));
        var headEnd = IndexOf(bytes, "\r\n\r\n"u8, 0) + 4;
        var head = Encoding.ASCII.GetString(bytes, 0, headEnd);
        var chunks = new List<byte[]>();
        if (!head.Contains("Transfer-Encoding: chunked", StringComparison.Ordinal))
            return (head, chunks, false);
        var position = headEnd;
        while (position < bytes.Length)
        {
            var lineEnd = IndexOf(bytes, "\r\n"u8, position);
            if (lineEnd < 0)
                break;
            var size = int.Parse(Encoding.ASCII.GetString(bytes, position, lineEnd - position), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (size == 0)
                return (head, chunks, true);
            if (lineEnd + 2 + size > bytes.Length)
                break;
            chunks.Add(bytes[(lineEnd + 2)..(lineEnd + 2 + size)]);
            position = lineEnd + 2 + size + 2;
        }

        return (head, chunks, false);
    }

    /// <summary><c>01-subscribe.stream1.raw</c> → (<c>01-subscribe</c>, <c>stream1</c>).</summary>
    public static (string Scenario, string Stream) Split(string rawFile)
    {
        var parts = rawFile[..^".raw".Length].Split('.');
        return (parts[0], parts[1]);
    }

    private static int IndexOf(byte[] bytes, ReadOnlySpan<byte> pattern, int from)
    {
        var at = bytes.AsSpan(from).IndexOf(pattern);
        return at < 0 ? -1 : at + from;
    }
}
