using System.Text;
using System.Text.Json;
using Longshore.Backends.Mesos;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>Replays the real master's recorded streams through the backend's RecordIO reader and event parser.</summary>
public sealed class TranscriptReplayTests
{
    public static TheoryData<string> StreamFiles() =>
        [.. Transcripts.RawFiles.Where(f => Transcripts.ReadRaw(f).Head.StartsWith("HTTP/1.1 200", StringComparison.Ordinal))];

    [Fact]
    public void Transcripts_AreCopiedNextToTheTests() => Assert.True(Transcripts.RawFiles.Count() >= 20, "expected the .raw transcripts in " + Transcripts.Folder);

    [Theory]
    [MemberData(nameof(StreamFiles))]
    public async Task ReadAsync_RecordedStream_YieldsTheRecordedRecordsInOrder(string rawFile)
    {
        var (scenario, stream) = Transcripts.Split(rawFile);
        var (_, chunks, _) = Transcripts.ReadRaw(rawFile);
        var body = new MemoryStream(chunks.SelectMany(c => c).ToArray());

        var reader = new RecordIoReader(body);
        var records = new List<string>();
        while (await reader.ReadAsync() is { } record)
            records.Add(Encoding.UTF8.GetString(record));

        Assert.Equal(Transcripts.Records(scenario, stream), records);
    }

    [Theory]
    [MemberData(nameof(StreamFiles))]
    public void Chunks_RecordedStream_EachChunkIsExactlyOneFramedRecord(string rawFile)
    {
        var (scenario, stream) = Transcripts.Split(rawFile);
        var (_, chunks, _) = Transcripts.ReadRaw(rawFile);

        var framed = Transcripts.Records(scenario, stream).Select(json => RecordIoReader.Frame(Encoding.UTF8.GetBytes(json))).ToArray();

        Assert.Equal(framed.Length, chunks.Count);
        for (var i = 0; i < chunks.Count; i++)
            Assert.Equal(framed[i], chunks[i]);
    }

    [Fact]
    public async Task ReadAsync_RecordsSplitAcrossOneByteReads_StillYieldsWholeRecords()
    {
        var (_, chunks, _) = Transcripts.ReadRaw("02-docker-task.stream1.raw");
        var reader = new RecordIoReader(new TrickleStream(chunks.SelectMany(c => c).ToArray()));

        var types = new List<string>();
        while (await reader.ReadAsync() is { } record)
            types.Add(MesosEvent.Parse(record).Type);

        var recorded = Transcripts.Records("02-docker-task", "stream1").Select(json => JsonDocument.Parse(json).RootElement.GetProperty("type").GetString());
        Assert.Equal(recorded, types);
        Assert.Equal(["SUBSCRIBED", "HEARTBEAT", "OFFERS", "UPDATE", "UPDATE", "UPDATE"], types.Take(6));
    }

    [Fact]
    public async Task ReadAsync_StreamCutInsideARecord_Throws()
    {
        var framed = RecordIoReader.Frame("{\"type\":\"HEARTBEAT\"}"u8);
        var reader = new RecordIoReader(new MemoryStream(framed[..^3]));

        await Assert.ThrowsAsync<InvalidDataException>(async () => await reader.ReadAsync());
    }

    [Fact]
    public async Task ReadAsync_GarbageLengthPrefix_Throws()
    {
        var reader = new RecordIoReader(new MemoryStream("12x\n{}"u8.ToArray()));

        await Assert.ThrowsAsync<InvalidDataException>(async () => await reader.ReadAsync());
    }

    [Fact]
    public void Parse_RecordedSubscribed_GivesFrameworkIdAndHeartbeat()
    {
        var subscribed = Assert.IsType<SubscribedEvent>(MesosEvent.Parse(Encoding.UTF8.GetBytes(Transcripts.Records("01-subscribe", "stream1")[0])));

        Assert.Equal("bb5eeeb0-0034-4121-b30f-efb90f3cc31c-0015", subscribed.FrameworkId);
        Assert.Equal(15.0, subscribed.HeartbeatIntervalSeconds);
    }

    [Fact]
    public void Parse_RecordedOffer_SumsScalarsAndKeepsTheAgentUrl()
    {
        var offers = Transcripts.Records("01-subscribe", "stream1").Select(r => MesosEvent.Parse(Encoding.UTF8.GetBytes(r))).OfType<OffersEvent>().First();

        var offer = Assert.Single(offers.Offers);
        Assert.Equal(2.0, offer.Cpus);
        Assert.Equal(23081.0, offer.Mem);
        Assert.Equal("127.0.0.1", offer.Hostname);
        Assert.Equal(new Uri("http://127.0.0.1:5051/"), offer.AgentUrl);
        Assert.EndsWith("-S0", offer.AgentId, StringComparison.Ordinal);
        Assert.Empty(offer.Attributes);
    }

    [Fact]
    public void Parse_EveryRecordedUpdate_HasAUuidExactlyWhenNotFromTheMaster()
    {
        var updates = Directory.GetFiles(Transcripts.Folder, "*.jsonl")
            .SelectMany(f => Transcripts.Entries(Path.GetFileNameWithoutExtension(f)))
            .Where(e => e.GetProperty("kind").GetString() == "record" && e.GetProperty("type").GetString() == "UPDATE")
            .Select(e => ((UpdateEvent)MesosEvent.Parse(Encoding.UTF8.GetBytes(e.GetProperty("json").GetString()!))).Status)
            .ToArray();

        Assert.True(updates.Length > 40);
        Assert.All(updates, u => Assert.Equal(u.Source != "SOURCE_MASTER", u.Uuid is not null));
        Assert.DoesNotContain(updates, u => u.State == "TASK_STAGING");
    }

    [Fact]
    public void Parse_RecordedFailoverError_GivesTheMessage()
    {
        var error = Transcripts.Records("08-errors", "stream1").Select(r => MesosEvent.Parse(Encoding.UTF8.GetBytes(r))).OfType<ErrorEvent>().Single();

        Assert.Equal("Framework failed over", error.Message);
    }

    [Fact]
    public void Accept_DockerRun_MatchesTheShapeTheRealMasterAccepted()
    {
        var recorded = Transcripts.Entries("02-docker-task").First(e => e.GetProperty("kind").GetString() == "request"
            && e.GetProperty("body").GetString()!.Contains("\"ACCEPT\"", StringComparison.Ordinal));
        using var sent = JsonDocument.Parse(recorded.GetProperty("body").GetString()!);
        var run = new Longshore.Core.Tasks.TaskRun
        {
            MesosId = "hello.1",
            FamilyId = "hello",
            Definition = new Longshore.Core.Tasks.TaskDefinition
            {
                Id = "hello",
                Cpus = 0.1,
                Mem = 32,
                Cmd = "echo hello-$X; exit 0",
                Env = new() { ["X"] = "transcripts" },
                Container = new() { Docker = new() { Image = "localhost/busybox:latest", Network = "HOST" } },
            },
        };

        using var ours = JsonDocument.Parse(MesosCalls.Accept("fw", ["offer"], [MesosCalls.TaskInfo(run, "agent", [])], 5).ToJsonString());

        var recordedTask = sent.RootElement.GetProperty("accept").GetProperty("operations")[0].GetProperty("launch").GetProperty("task_infos")[0];
        var ourTask = ours.RootElement.GetProperty("accept").GetProperty("operations")[0].GetProperty("launch").GetProperty("task_infos")[0];
        Assert.Equal(Keys(recordedTask), Keys(ourTask));
        Assert.Equal(recordedTask.GetProperty("resources").GetRawText(), ourTask.GetProperty("resources").GetRawText());
        Assert.Equal(recordedTask.GetProperty("container").GetProperty("docker").GetRawText(), ourTask.GetProperty("container").GetProperty("docker").GetRawText());
        Assert.Equal(Keys(sent.RootElement.GetProperty("accept")), Keys(ours.RootElement.GetProperty("accept")));
        Assert.Contains(ourTask.GetProperty("command").GetProperty("environment").GetProperty("variables").EnumerateArray(),
            v => v.GetProperty("name").GetString() == "X" && v.GetProperty("value").GetString() == "transcripts");
    }

    [Fact]
    public void Parse_RecordedReservedOffer_CountsTheReservationAndKeepsWhatATaskMustRepeat()
    {
        var offer = RecordedReservedOffer();

        Assert.Equal("batch", offer.Role);
        Assert.Equal(4.0, offer.Cpus);
        Assert.Equal(3584.0, offer.Mem);
        var reserved = Assert.Single(offer.Scalars, s => s.Reserved && s.Name == "cpus");
        Assert.Equal(1.0, reserved.Amount);
        Assert.Equal("""{"name":"cpus","type":"SCALAR","role":"batch"}""", reserved.Identity.ToJsonString());
    }

    [Fact]
    public void Accept_RecordedReservedOffer_TakesTheReservationFirstAsTheRealMasterAccepted()
    {
        var offer = RecordedReservedOffer();
        var accepted = JsonDocument.Parse(Transcripts.Entries("13-reserved").First(e => e.GetProperty("kind").GetString() == "request"
            && e.GetProperty("label").GetString() == "ACCEPT").GetProperty("body").GetString()!).RootElement;
        var recordedTask = accepted.GetProperty("accept").GetProperty("operations")[0].GetProperty("launch").GetProperty("task_infos")[0];
        var run = new Longshore.Core.Tasks.TaskRun
        {
            MesosId = recordedTask.GetProperty("task_id").GetProperty("value").GetString()!,
            FamilyId = "reserved",
            Definition = new Longshore.Core.Tasks.TaskDefinition { Id = "reserved", Cpus = 1.5, Mem = 64, Cmd = "echo on-the-batch-reservation" },
        };

        var task = MesosCalls.TaskInfo(run, offer.AgentId, [], "batch", new OfferedResources(offer.Scalars));

        Assert.Equal(recordedTask.GetProperty("resources").GetRawText(), task["resources"]!.ToJsonString());
        // The task ended TASK_FINISHED on the real agent: the master took exactly these resources.
        Assert.Contains(Transcripts.Records("13-reserved", "stream1"), r => r.Contains("\"TASK_FINISHED\"", StringComparison.Ordinal));
    }

    [Fact]
    public void Take_MoreThanTheReservation_RestComesFromUnreservedAndNothingIsTakenTwice()
    {
        var pool = new OfferedResources(RecordedReservedOffer().Scalars);

        var first = pool.Take("cpus", 0.75).Select(r => r.ToJsonString()).ToArray();
        var second = pool.Take("cpus", 0.75).Select(r => r.ToJsonString()).ToArray();

        Assert.Equal(["""{"name":"cpus","type":"SCALAR","role":"batch","scalar":{"value":0.75}}"""], first);
        Assert.Equal(["""{"name":"cpus","type":"SCALAR","role":"batch","scalar":{"value":0.25}}""",
            """{"name":"cpus","type":"SCALAR","role":"*","scalar":{"value":0.5}}"""], second);
    }

    private static MesosOffer RecordedReservedOffer()
    {
        var offers = Transcripts.Records("13-reserved", "stream1").Select(r => MesosEvent.Parse(Encoding.UTF8.GetBytes(r))).OfType<OffersEvent>().First();
        return offers.Offers.Single(o => o.Role == "batch");
    }

    private static string[] Keys(JsonElement element) => [.. element.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal)];

    /// <summary>Hands out one byte per read, like a network that splits every record.</summary>
    private sealed class TrickleStream(byte[] data) : MemoryStream(data)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(1, buffer.Length)], cancellationToken);
    }

    [Fact]
    public void MasterSlaves_RecordedAnswer_GivesTheAgentsFilesApiAddressFromItsPid()
    {
        var answer = Transcripts.Entries("00-master-endpoints")
            .Single(e => e.GetProperty("kind").GetString() == "response" && e.GetProperty("label").GetString() == "GET /master/slaves");
        using var slaves = JsonDocument.Parse(answer.GetProperty("body").GetString()!);

        Assert.Equal(new Uri("http://127.0.0.1:5051/"), MesosAgents.UrlOf(slaves.RootElement, "127.0.0.1"));
        Assert.Null(MesosAgents.UrlOf(slaves.RootElement, "elsewhere"));
    }
}
