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

    private const string Secret = "s3cret";

    private static string Basic(string secret) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("longshore:" + secret));

    /// <summary>A master set up as the recorded one of 12-auth: principal longshore, roles *, batch and web allowed.</summary>
    private static TestMesosMaster AuthMaster()
    {
        var master = TestMesosMaster.Start();
        master.Credentials = new() { ["longshore"] = Secret };
        master.AllowedRoles["longshore"] = ["*", "batch", "web"];
        return master;
    }

    [Fact]
    public async Task Answers_RecordedAuthenticationRequests_SameStatusHeadersAndBodyAsTheRealMaster()
    {
        await using var master = AuthMaster();
        master.AddAgent("127.0.0.1", cpus: 3, mem: 3072);
        var entries = Transcripts.Entries("12-auth");
        var body = entries.First(e => e.GetProperty("kind").GetString() == "request" && e.GetProperty("label").GetString() == "stream1").GetProperty("body").GetString()!;
        using var stream = await RawSubscribeAsync(master, body, Basic(Secret));
        var recordedFramework = Transcripts.Records("12-auth", "stream1").Select(r => JsonDocument.Parse(r).RootElement)
            .First(r => r.GetProperty("type").GetString() == "SUBSCRIBED").GetProperty("subscribed").GetProperty("framework_id").GetProperty("value").GetString()!;
        var recordedStream = entries.First(e => e.GetProperty("kind").GetString() == "response" && e.GetProperty("label").GetString() == "stream1")
            .GetProperty("headers").EnumerateArray().First(h => h[0].GetString() == "Mesos-Stream-Id")[1].GetString()!;
        string Ours(string text) => text.Replace("<right>", Basic(Secret), StringComparison.Ordinal).Replace("<wrong>", Basic("not-the-secret"), StringComparison.Ordinal)
            .Replace(recordedFramework, stream.FrameworkId, StringComparison.Ordinal).Replace(recordedStream, stream.StreamId, StringComparison.Ordinal);

        string[] labels = ["no-credentials", "wrong-secret", "probe-wrong-secret", "probe-right-secret", "principal-mismatch", "teardown-no-credentials"];
        foreach (var label in labels)
        {
            var request = entries.First(e => e.GetProperty("kind").GetString() == "request" && e.GetProperty("label").GetString() == label);
            var response = entries.First(e => e.GetProperty("kind").GetString() == "response" && e.GetProperty("label").GetString() == label);

            var (head, answer) = await RawAsync(master, request, Ours);

            Assert.Equal(WithoutDate(response.GetProperty("raw_head").GetString()!), WithoutDate(head));
            Assert.True(response.GetProperty("body").GetString() == answer, $"{label}: body {answer}");
        }
    }

    [Fact]
    public async Task Subscribe_RecordedRoleTheAclsRefuse_ErrorEventThenTheEndAndNothingRegistered()
    {
        await using var master = AuthMaster();
        var request = Transcripts.Entries("12-auth").First(e => e.GetProperty("kind").GetString() == "request" && e.GetProperty("label").GetString() == "refused");
        var (recordedHead, _, terminated) = Transcripts.ReadRaw("12-auth.refused.raw");

        using var stream = await RawSubscribeAsync(master, request.GetProperty("body").GetString()!, Basic(Secret), subscribed: false);

        Assert.Equal(WithoutIds(recordedHead), WithoutIds(stream.Head));
        Assert.Equal(Transcripts.Records("12-auth", "refused").Single(), await stream.NextRecordAsync());
        Assert.True(terminated);
        Assert.Null(await stream.NextRecordAsync());
        Assert.Empty(master.FrameworkIds);
    }

    [Fact]
    public async Task Answers_RecordedFailoverRedirectAndRecovery_LikeTheRealMasters()
    {
        var entries = Transcripts.Entries("14-failover");
        var redirect = entries.First(e => e.GetProperty("kind").GetString() == "response" && e.GetProperty("label").GetString() == "redirect");
        var recovering = entries.First(e => e.GetProperty("kind").GetString() == "response" && e.GetProperty("status").GetInt32() == 503);
        await using var leader = TestMesosMaster.Start();
        await using var follower = TestMesosMaster.Start(leader: leader.Uri);
        var recordedLeader = redirect.GetProperty("headers").EnumerateArray().First(h => h[0].GetString() == "Location")[1].GetString()!.Split('/')[2];
        string Ours(string text) => text.Replace(recordedLeader, leader.Uri.Authority, StringComparison.Ordinal);

        var (head, _) = await RawAsync(follower, entries.First(e => e.GetProperty("kind").GetString() == "request" && e.GetProperty("label").GetString() == "redirect"), Ours);
        Assert.Equal(WithoutDate(Ours(redirect.GetProperty("raw_head").GetString()!)), WithoutDate(head));

        leader.Recovering = true;
        var (recoveringHead, body) = await RawAsync(leader, entries.First(e => e.GetProperty("kind").GetString() == "request"
            && e.GetProperty("label").GetString() == recovering.GetProperty("label").GetString()), Ours);
        Assert.Equal(WithoutDate(recovering.GetProperty("raw_head").GetString()!), WithoutDate(recoveringHead));
        Assert.Equal(recovering.GetProperty("body").GetString(), body);
    }

    [Fact]
    public async Task Offers_AgentWithAReservation_OfferedAndTakenLikeTheRecordedOne()
    {
        await using var master = TestMesosMaster.Start();
        var agent = master.AddAgent("127.0.0.1", cpus: 3, mem: 3072, roles: ["batch", "web"]);
        agent.Reserved["batch"] = (1, 512);
        var entries = Transcripts.Entries("13-reserved");
        var recordedOffer = JsonDocument.Parse(Transcripts.Records("13-reserved", "stream1").First(r => r.Contains("\"OFFERS\"", StringComparison.Ordinal))).RootElement
            .GetProperty("offers").GetProperty("offers")[0];
        using var stream = await RawSubscribeAsync(master, entries.First(e => e.GetProperty("kind").GetString() == "request").GetProperty("body").GetString()!);

        JsonElement offer;
        do
        {
            var record = JsonDocument.Parse((await stream.NextRecordAsync())!).RootElement;
            offer = record.GetProperty("type").GetString() == "OFFERS"
                ? record.GetProperty("offers").GetProperty("offers").EnumerateArray().FirstOrDefault(o => o.GetProperty("allocation_info").GetProperty("role").GetString() == "batch")
                : default;
        }
        while (offer.ValueKind != JsonValueKind.Object);

        // Same resources, role by role, as the real master offered (the agent's disk aside); the unreserved ones are shared between the two roles here.
        static string[] Shape(JsonElement o) => [.. o.GetProperty("resources").EnumerateArray().Where(r => r.GetProperty("name").GetString() != "disk")
            .Select(r => $"{r.GetProperty("name").GetString()} role={r.GetProperty("role").GetString()} for={r.GetProperty("allocation_info").GetProperty("role").GetString()}")];
        Assert.Equal(Shape(recordedOffer), Shape(offer));
        var reserved = offer.GetProperty("resources").EnumerateArray().Where(r => r.GetProperty("role").GetString() == "batch")
            .ToDictionary(r => r.GetProperty("name").GetString()!, r => r.GetProperty("scalar").GetProperty("value").GetDouble());
        Assert.Equal(1.0, reserved["cpus"]);
        Assert.Equal(512.0, reserved["mem"]);

        var accept = entries.First(e => e.GetProperty("kind").GetString() == "request" && e.GetProperty("label").GetString() == "ACCEPT").GetProperty("body").GetString()!;
        var recordedFramework = recordedOffer.GetProperty("framework_id").GetProperty("value").GetString()!;
        var ours = accept.Replace(recordedFramework, stream.FrameworkId, StringComparison.Ordinal)
            .Replace(recordedOffer.GetProperty("id").GetProperty("value").GetString()!, offer.GetProperty("id").GetProperty("value").GetString()!, StringComparison.Ordinal)
            .Replace(recordedOffer.GetProperty("agent_id").GetProperty("value").GetString()!, agent.Id, StringComparison.Ordinal);
        await RawCallAsync(master, ours, stream.StreamId);

        JsonElement update;
        do
            update = JsonDocument.Parse((await stream.NextRecordAsync())!).RootElement;
        while (update.GetProperty("type").GetString() != "UPDATE");

        // Launched (the agent's TASK_STARTING, as recorded), not refused by the master (TASK_ERROR).
        Assert.Equal("TASK_STARTING", update.GetProperty("update").GetProperty("status").GetProperty("state").GetString());
        var task = Assert.Single(master.Tasks);
        Assert.Equal(("batch", 1.0, 64.0), (task.ReservedRole, task.ReservedCpus, task.ReservedMem));
    }

    /// <summary>A call on an open stream, its answer read and dropped.</summary>
    private static async Task RawCallAsync(TestMesosMaster master, string body, string streamId)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", master.Port);
        var bytes = Encoding.UTF8.GetBytes(body);
        await client.GetStream().WriteAsync(Encoding.ASCII.GetBytes($"POST /api/v1/scheduler HTTP/1.1\r\nHost: 127.0.0.1:{master.Port}\r\nContent-Type: application/json\r\nMesos-Stream-Id: {streamId}\r\nContent-Length: {bytes.Length}\r\n\r\n").Concat(bytes).ToArray());
        var answer = new byte[512];
        var read = await client.GetStream().ReadAsync(answer);
        Assert.StartsWith("HTTP/1.1 202", Encoding.ASCII.GetString(answer, 0, read), StringComparison.Ordinal);
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

    private static async Task<RawStream> RawSubscribeAsync(TestMesosMaster master, string body, string? authorization = null, bool subscribed = true)
    {
        var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", master.Port);
        var network = client.GetStream();
        var bytes = Encoding.UTF8.GetBytes(body);
        var auth = authorization is null ? "" : $"Authorization: {authorization}\r\n";
        await network.WriteAsync(Encoding.ASCII.GetBytes($"POST /api/v1/scheduler HTTP/1.1\r\nHost: 127.0.0.1:{master.Port}\r\nContent-Type: application/json\r\nAccept: application/json\r\n{auth}Content-Length: {bytes.Length}\r\n\r\n").Concat(bytes).ToArray());
        var stream = new RawStream(client);
        await stream.ReadHeadAsync(subscribed);
        return stream;
    }

    private sealed class RawStream(TcpClient client) : IDisposable
    {
        private readonly Stream _network = client.GetStream();

        public string Head { get; private set; } = "";

        public string StreamId { get; private set; } = "";

        public string FrameworkId { get; private set; } = "";

        public async Task ReadHeadAsync(bool subscribed = true)
        {
            Head = await ReadLinesUntilBlankAsync();
            StreamId = Head.Split("\r\n").First(l => l.StartsWith("Mesos-Stream-Id:", StringComparison.Ordinal))["Mesos-Stream-Id:".Length..].Trim();
            if (!subscribed)
                return;
            await ReadSubscribedAsync();
        }

        private async Task ReadSubscribedAsync()
        {
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
