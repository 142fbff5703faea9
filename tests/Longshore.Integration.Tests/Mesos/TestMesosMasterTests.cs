using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>The test master answers the recorded requests of a real Mesos 1.12 master with the recorded heads and bodies.</summary>
public sealed class TestMesosMasterTests
{
    [Fact]
    public async Task Answers_RecordedErrorRequests_SameStatusHeadersAndBodyAsTheRealMaster()
    {
        await using var master = TestMesosMaster.Start();
        var entries = Transcripts.Entries("08-errors");
        var subscribe = entries.First(e => e.GetProperty("kind").GetString() == "request" && e.GetProperty("label").GetString() == "stream1");
        using var stream = await RawSubscribeAsync(master, subscribe.GetProperty("body").GetString()!);
        var recordedFramework = "bb5eeeb0-0034-4121-b30f-efb90f3cc31c-0025";
        var recordedStream = "5c6e340f-993a-4f1e-88f2-2808a4b06cfb";

        var compared = 0;
        for (var i = 0; i < entries.Count; i++)
        {
            var request = entries[i];
            if (request.GetProperty("kind").GetString() == "note" && request.GetProperty("text").GetString()!.Contains("call-level semantics", StringComparison.Ordinal))
                break;
            if (request.GetProperty("kind").GetString() != "request" || request.GetProperty("label").GetString() is "stream1" or "noaccept" || request.GetProperty("label").GetString()!.StartsWith("TEARDOWN", StringComparison.Ordinal))
                continue;
            var response = entries.Skip(i + 1).First(e => e.GetProperty("kind").GetString() == "response" && e.GetProperty("label").GetString() == request.GetProperty("label").GetString());
            string Ours(string text) => text.Replace(recordedFramework, stream.FrameworkId, StringComparison.Ordinal).Replace(recordedStream, stream.StreamId, StringComparison.Ordinal);

            var (head, body) = await RawAsync(master, request, Ours);

            var label = request.GetProperty("label").GetString();
            Assert.Equal(WithoutDate(Ours(response.GetProperty("raw_head").GetString()!)), WithoutDate(head));
            Assert.True(Ours(response.TryGetProperty("body", out var rb) ? rb.GetString() ?? "" : "") == body, $"{label}: body {body}");
            compared++;
        }

        Assert.True(compared >= 20, $"only {compared} recorded requests compared");
    }

    [Fact]
    public async Task Subscribe_RecordedRequest_HeadAndFirstRecordsLikeTheRealMaster()
    {
        await using var master = TestMesosMaster.Start();
        master.AddAgent("127.0.0.1", cpus: 2, mem: 23081);
        var request = Transcripts.Entries("01-subscribe").First(e => e.GetProperty("kind").GetString() == "request");
        var (recordedHead, _, _) = Transcripts.ReadRaw("01-subscribe.stream1.raw");

        using var stream = await RawSubscribeAsync(master, request.GetProperty("body").GetString()!);

        Assert.Equal(WithoutIds(recordedHead), WithoutIds(stream.Head));
        Assert.Equal("HEARTBEAT", (await stream.NextTypeAsync()));
        Assert.Equal("OFFERS", (await stream.NextTypeAsync()));
    }

    [Fact]
    public async Task Subscribe_SameFrameworkTwice_OldStreamGetsFailedOverErrorAndItsIdIsRefused()
    {
        await using var master = TestMesosMaster.Start();
        var body = Transcripts.Entries("01-subscribe").First(e => e.GetProperty("kind").GetString() == "request").GetProperty("body").GetString()!;
        using var first = await RawSubscribeAsync(master, body);
        var again = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(body)!;
        var resubscribe = body.Replace("\"framework_info\":{", $"\"framework_info\":{{\"id\":{{\"value\":\"{first.FrameworkId}\"}},", StringComparison.Ordinal)
            .Replace("{\"type\":\"SUBSCRIBE\"", $"{{\"framework_id\":{{\"value\":\"{first.FrameworkId}\"}},\"type\":\"SUBSCRIBE\"", StringComparison.Ordinal);
        Assert.NotNull(again);

        using var second = await RawSubscribeAsync(master, resubscribe);

        Assert.Equal(first.FrameworkId, second.FrameworkId);
        Assert.NotEqual(first.StreamId, second.StreamId);
        string? type;
        do
            type = await first.NextTypeAsync();
        while (type == "HEARTBEAT");
        Assert.Equal("ERROR", type);
        Assert.Null(await first.NextTypeAsync());
    }

    private static string WithoutDate(string head) => string.Join("\r\n", head.Split("\r\n").Where(line => !line.StartsWith("Date:", StringComparison.Ordinal)));

    private static string WithoutIds(string head) => string.Join("\r\n", head.Split("\r\n")
        .Where(line => !line.StartsWith("Date:", StringComparison.Ordinal))
        .Select(line => line.StartsWith("Mesos-Stream-Id:", StringComparison.Ordinal) ? "Mesos-Stream-Id: <id>" : line));

    /// <summary>Sends the recorded request byte for byte (ids swapped for ours) on a new connection; returns head and body.</summary>
    private static async Task<(string Head, string Body)> RawAsync(TestMesosMaster master, JsonElement request, Func<string, string> ours)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", master.Port);
        var network = client.GetStream();
        var body = Encoding.UTF8.GetBytes(ours(request.TryGetProperty("body", out var b) ? b.GetString() ?? "" : ""));
        var text = new StringBuilder($"{request.GetProperty("method").GetString()} {request.GetProperty("path").GetString()} HTTP/1.1\r\n");
        foreach (var header in request.GetProperty("headers").EnumerateArray())
        {
            var name = header[0].GetString()!;
            var value = name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) ? body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) : ours(header[1].GetString()!);
            text.Append(name).Append(": ").Append(value).Append("\r\n");
        }

        if (!request.GetProperty("headers").EnumerateArray().Any(h => h[0].GetString()!.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)))
            text.Append("Content-Length: ").Append(body.Length).Append("\r\n");
        text.Append("\r\n");
        await network.WriteAsync(Encoding.ASCII.GetBytes(text.ToString()).Concat(body).ToArray());
        var reader = new StreamReader(network, Encoding.UTF8);
        var head = new StringBuilder();
        var length = 0;
        while (await reader.ReadLineAsync() is { Length: > 0 } line)
        {
            head.Append(line).Append("\r\n");
            if (line.StartsWith("Content-Length:", StringComparison.Ordinal))
                length = int.Parse(line["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        }

        head.Append("\r\n");
        var buffer = new char[length];
        var read = 0;
        while (read < length)
            read += await reader.ReadAsync(buffer.AsMemory(read));
        return (head.ToString(), new string(buffer, 0, read));
    }

    private static async Task<RawStream> RawSubscribeAsync(TestMesosMaster master, string body)
    {
        var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", master.Port);
        var network = client.GetStream();
        var bytes = Encoding.UTF8.GetBytes(body);
        await network.WriteAsync(Encoding.ASCII.GetBytes($"POST /api/v1/scheduler HTTP/1.1\r\nHost: 127.0.0.1:{master.Port}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {bytes.Length}\r\n\r\n").Concat(bytes).ToArray());
        var stream = new RawStream(client);
        await stream.ReadHeadAsync();
        return stream;
    }

    private sealed class RawStream(TcpClient client) : IDisposable
    {
        private readonly Stream _network = client.GetStream();

        public string Head { get; private set; } = "";

        public string StreamId { get; private set; } = "";

        public string FrameworkId { get; private set; } = "";

        public async Task ReadHeadAsync()
        {
            Head = await ReadLinesUntilBlankAsync();
            StreamId = Head.Split("\r\n").First(l => l.StartsWith("Mesos-Stream-Id:", StringComparison.Ordinal))["Mesos-Stream-Id:".Length..].Trim();
            var subscribed = await NextRecordAsync();
            FrameworkId = JsonDocument.Parse(subscribed!).RootElement.GetProperty("subscribed").GetProperty("framework_id").GetProperty("value").GetString()!;
        }

        public async Task<string?> NextTypeAsync() =>
            await NextRecordAsync() is { } json ? JsonDocument.Parse(json).RootElement.GetProperty("type").GetString() : null;

        /// <summary>Reads one HTTP chunk and checks it holds exactly one RecordIO record.</summary>
        public async Task<string?> NextRecordAsync()
        {
            var sizeLine = await ReadLineAsync();
            if (sizeLine is null)
                return null;
            var size = Convert.ToInt32(sizeLine, 16);
            if (size == 0)
                return null;
            var chunk = new byte[size + 2];
            await _network.ReadExactlyAsync(chunk);
            var text = Encoding.UTF8.GetString(chunk, 0, size);
            var newline = text.IndexOf('\n', StringComparison.Ordinal);
            var json = text[(newline + 1)..];
            Assert.Equal(int.Parse(text[..newline], System.Globalization.CultureInfo.InvariantCulture), Encoding.UTF8.GetByteCount(json));
            return json;
        }

        public void Dispose() => client.Dispose();

        private async Task<string> ReadLinesUntilBlankAsync()
        {
            var head = new StringBuilder();
            while (await ReadLineAsync() is { Length: > 0 } line)
                head.Append(line).Append("\r\n");
            return head.Append("\r\n").ToString();
        }

        private async Task<string?> ReadLineAsync()
        {
            var line = new List<byte>();
            var one = new byte[1];
            while (true)
            {
                if (await _network.ReadAsync(one) == 0)
                    return line.Count == 0 ? null : Encoding.ASCII.GetString(line.ToArray());
                if (one[0] == '\n' && line.Count > 0 && line[^1] == '\r')
                    return Encoding.ASCII.GetString(line.ToArray(), 0, line.Count - 1);
                line.Add(one[0]);
            }
        }
    }
}
