using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Longshore.Backends.Mesos;
using Longshore.Core.Tasks;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>A recording run: the real clusters of setup-mesos.sh and <c>LONGSHORE_RECORD_MESOS_TRANSCRIPTS=folder</c>.</summary>
public sealed class RecordingFactAttribute : FactAttribute
{
    public RecordingFactAttribute()
    {
        if (TranscriptRecordings.Folder is null)
            Skip = "records transcripts only when LONGSHORE_RECORD_MESOS_TRANSCRIPTS names a folder (see Mesos/Transcripts/README.md)";
        else if (RealMesos.Principal is null || RealMesos.HaMasters.Count < 3)
            Skip = RealMesos.SkipReason;
    }
}

/// <summary>
/// How transcripts 12 to 14 were recorded from the real clusters (authentication and ACLs, a reservation, a leader
/// failover): the exact calls, so a re-recording is one command. Not a test of Longshore.
/// </summary>
public sealed class TranscriptRecordings
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    public static string? Folder { get; } = Environment.GetEnvironmentVariable("LONGSHORE_RECORD_MESOS_TRANSCRIPTS") is { Length: > 0 } f ? f : null;

    private static string Right => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{RealMesos.Principal}:{RealMesos.Secret}"));

    private static string Wrong => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{RealMesos.Principal}:not-the-secret"));

    private static (string, string)[] Json(string? authorization, string? streamId = null) =>
    [
        ("Content-Type", "application/json"), ("Accept", "application/json"),
        .. authorization is null ? Array.Empty<(string, string)>() : [("Authorization", authorization)],
        .. streamId is null ? Array.Empty<(string, string)>() : [("Mesos-Stream-Id", streamId)],
    ];

    private static string Subscribe(string name, string[] roles, string? principal, string? frameworkId = null)
    {
        var options = new MesosBackendOptions { FrameworkName = name, Roles = roles, Principal = principal, FailoverTimeout = TimeSpan.FromSeconds(3600) };
        return MesosCalls.Subscribe(options, frameworkId).ToJsonString();
    }

    /// <summary>Acknowledges every agent update of the task (master-made ones carry no uuid) until one of <paramref name="last"/> states.</summary>
    private static async Task AcknowledgeUntilAsync(TranscriptRecorder recorder, Uri master, TranscriptRecorder.RecordedStream stream, string frameworkId,
        string agentId, string taskId, string? authorization, params string[] last)
    {
        while (true)
        {
            var status = (await stream.NextAsync("UPDATE", Wait)).GetProperty("update").GetProperty("status");
            if (status.TryGetProperty("uuid", out var uuid))
            {
                await recorder.SendAsync(master, "ACKNOWLEDGE " + status.GetProperty("state").GetString(), "POST", "/api/v1/scheduler",
                    MesosCalls.Acknowledge(frameworkId, agentId, taskId, uuid.GetString()!).ToJsonString(), Json(authorization, stream.StreamId));
            }

            if (last.Contains(status.GetProperty("state").GetString()))
                return;
        }
    }

    [RecordingFact]
    public async Task Record12_Authentication()
    {
        var master = RealMesos.Master!;
        await using var recorder = new TranscriptRecorder(Folder!, "12-auth", Right);
        recorder.Note("Scenario 12: --authenticate_http_frameworks --http_framework_authenticators=basic --credentials (principal longshore) "
            + "and ACLs: longshore may register with roles *, batch, web and no other");
        var name = "transcripts-s12-" + Guid.NewGuid().ToString("N")[..6];
        await recorder.SendAsync(master, "no-credentials", "POST", "/api/v1/scheduler", Subscribe(name, ["*"], "longshore"), Json(null));
        await recorder.SendAsync(master, "wrong-secret", "POST", "/api/v1/scheduler", Subscribe(name, ["*"], "longshore"), Json(Wrong));
        recorder.Note("A call that is invalid once authenticated: how a client checks credentials without subscribing");
        await recorder.SendAsync(master, "probe-wrong-secret", "POST", "/api/v1/scheduler", """{"type":"RECONCILE"}""", Json(Wrong));
        await recorder.SendAsync(master, "probe-right-secret", "POST", "/api/v1/scheduler", """{"type":"RECONCILE"}""", Json(Right));
        await recorder.SendAsync(master, "principal-mismatch", "POST", "/api/v1/scheduler", Subscribe(name, ["*"], "someone-else"), Json(Right));
        recorder.Note("A role the ACLs refuse: 200, an ERROR event, the end of the stream; nothing is registered");
        var refused = await recorder.SubscribeAsync(master, "refused", Subscribe(name, ["forbidden"], "longshore"), Json(Right));
        await refused.Ended.Task.WaitAsync(Wait);
        recorder.Note("Roles *, web and batch with the right secret");
        var stream = await recorder.SubscribeAsync(master, "stream1", Subscribe(name, ["*", "web"], "longshore"), Json(Right));
        var subscribed = await stream.NextAsync("SUBSCRIBED", Wait);
        var frameworkId = subscribed.GetProperty("subscribed").GetProperty("framework_id").GetProperty("value").GetString()!;
        await stream.NextAsync("OFFERS", Wait);
        recorder.Note("A call on the stream without credentials, then TEARDOWN");
        await recorder.SendAsync(master, "teardown-no-credentials", "POST", "/api/v1/scheduler",
            $$"""{"framework_id":{"value":"{{frameworkId}}"},"type":"TEARDOWN"}""", Json(null, stream.StreamId));
        await recorder.SendAsync(master, "TEARDOWN", "POST", "/api/v1/scheduler",
            $$"""{"framework_id":{"value":"{{frameworkId}}"},"type":"TEARDOWN"}""", Json(Right, stream.StreamId));
        await stream.Ended.Task.WaitAsync(Wait);
    }

    [RecordingFact]
    public async Task Record13_ReservedResources()
    {
        var master = RealMesos.Master!;
        await using var recorder = new TranscriptRecorder(Folder!, "13-reserved", Right);
        recorder.Note("Scenario 13: an agent with cpus(batch):1;mem(batch):512 reserved statically; a framework with roles batch and web "
            + "launches a task on 1.5 cpus (the reserved 1 plus 0.5 unreserved) and 64 MB of the reserved mem, as Longshore's backend builds it");
        var name = "transcripts-s13-" + Guid.NewGuid().ToString("N")[..6];
        var stream = await recorder.SubscribeAsync(master, "stream1", Subscribe(name, ["batch", "web"], "longshore"), Json(Right));
        var frameworkId = (await stream.NextAsync("SUBSCRIBED", Wait)).GetProperty("subscribed").GetProperty("framework_id").GetProperty("value").GetString()!;
        MesosOffer? offer = null;
        while (offer is null)
        {
            var offers = (OffersEvent)MesosEvent.Parse(Encoding.UTF8.GetBytes((await stream.NextAsync("OFFERS", Wait)).GetRawText()));
            offer = offers.Offers.FirstOrDefault(o => o.Role == "batch" && o.Scalars.Any(s => s.Reserved));
        }

        var run = TaskRun.CreateFirst(new TaskDefinition
        {
            Id = "reserved",
            Cpus = 1.5,
            Mem = 64,
            Cmd = "echo on-the-batch-reservation",
            Container = new ContainerSpec { Docker = new DockerSpec { Image = RealMesos.Image, Network = "HOST" } },
        }, Guid.NewGuid(), TimeProvider.System.GetUtcNow());
        var accept = MesosCalls.Accept(frameworkId, [offer.Id], [MesosCalls.TaskInfo(run, offer.AgentId, [], "batch", new OfferedResources(offer.Scalars))], 5);
        await recorder.SendAsync(master, "ACCEPT", "POST", "/api/v1/scheduler", accept.ToJsonString(), Json(Right, stream.StreamId));
        await AcknowledgeUntilAsync(recorder, master, stream, frameworkId, offer.AgentId, run.MesosId, Right, "TASK_FINISHED", "TASK_FAILED", "TASK_ERROR");

        await recorder.SendAsync(master, "TEARDOWN", "POST", "/api/v1/scheduler",
            $$"""{"framework_id":{"value":"{{frameworkId}}"},"type":"TEARDOWN"}""", Json(Right, stream.StreamId));
        await stream.Ended.Task.WaitAsync(Wait);
    }

    [RecordingFact]
    public async Task Record14_LeaderFailover()
    {
        await using var recorder = new TranscriptRecorder(Folder!, "14-failover", Right);
        recorder.Note("Scenario 14: three masters (5060-5062, --zk, --quorum=2, replicated log, --zk_session_timeout=3secs) and one agent "
            + "(--master=zk://); the leader is killed with SIGKILL while a task runs");
        var leader = await RealMesos.HaLeaderAsync();
        var follower = RealMesos.HaMasters.First(m => m.Port != leader.Port);
        var name = "transcripts-s14-" + Guid.NewGuid().ToString("N")[..6];
        await recorder.SendAsync(follower, "redirect", "POST", "/api/v1/scheduler", Subscribe(name, ["*"], null), Json(null));
        await recorder.SendAsync(follower, "GET /master/redirect", "GET", "/master/redirect", null);
        var stream1 = await recorder.SubscribeAsync(leader, "stream1", Subscribe(name, ["*"], null), Json(null));
        var frameworkId = (await stream1.NextAsync("SUBSCRIBED", Wait)).GetProperty("subscribed").GetProperty("framework_id").GetProperty("value").GetString()!;
        var offer = ((OffersEvent)MesosEvent.Parse(Encoding.UTF8.GetBytes((await stream1.NextAsync("OFFERS", Wait)).GetRawText()))).Offers[0];
        var run = TaskRun.CreateFirst(new TaskDefinition
        {
            Id = "failover",
            Cpus = 0.1,
            Mem = 32,
            Cmd = "sleep 600",
            Container = new ContainerSpec { Docker = new DockerSpec { Image = RealMesos.Image, Network = "HOST" } },
        }, Guid.NewGuid(), TimeProvider.System.GetUtcNow());
        await recorder.SendAsync(leader, "ACCEPT", "POST", "/api/v1/scheduler",
            MesosCalls.Accept(frameworkId, [offer.Id], [MesosCalls.TaskInfo(run, offer.AgentId, [])], 5).ToJsonString(), Json(null, stream1.StreamId));
        await AcknowledgeUntilAsync(recorder, leader, stream1, frameworkId, offer.AgentId, run.MesosId, null, "TASK_RUNNING");

        recorder.Note($"SIGKILL to the leading master {leader.Authority}");
        await RealMesos.KillMasterAsync(leader);
        try
        {
            recorder.Note("stream1: " + await stream1.Ended.Task.WaitAsync(Wait));
            try
            {
                await recorder.SendAsync(leader, "dead-master", "POST", "/api/v1/scheduler", Subscribe(name, ["*"], null, frameworkId), Json(null));
            }
            catch (System.Net.Sockets.SocketException e)
            {
                recorder.Note($"{leader.Authority}: {e.SocketErrorCode} ({e.Message})");
            }

            recorder.Note("The surviving masters asked with the same framework id every 0.5 s, following a 307, until one subscribes");
            TranscriptRecorder.RecordedStream? stream2 = null;
            for (var attempt = 0; stream2 is null && attempt < 120; attempt++)
            {
                foreach (var master in RealMesos.HaMasters.Where(m => m.Port != leader.Port))
                {
                    var (status, head, _) = await recorder.SendAsync(master, $"resubscribe-{attempt}-{master.Port}", "POST", "/api/v1/scheduler",
                        """{"type":"RECONCILE"}""", Json(null));
                    if (status == 307)
                        continue;
                    if (status == 400)
                    {
                        stream2 = await recorder.SubscribeAsync(master, "stream2", Subscribe(name, ["*"], null, frameworkId), Json(null));
                        break;
                    }

                    _ = head;
                }

                if (stream2 is null)
                    await Task.Delay(500);
            }

            Assert.NotNull(stream2);
            var newLeader = await RealMesos.HaLeaderAsync();
            var subscribed = await stream2.NextAsync("SUBSCRIBED", Wait);
            Assert.Equal(frameworkId, subscribed.GetProperty("subscribed").GetProperty("framework_id").GetProperty("value").GetString());
            recorder.Note("Explicit reconciliation right away (the agent may not have re-registered yet), then every 2 s until it answers");
            for (var attempt = 0; attempt < 30; attempt++)
            {
                await recorder.SendAsync(newLeader, "RECONCILE", "POST", "/api/v1/scheduler",
                    MesosCalls.Reconcile(frameworkId, [(run.MesosId, offer.AgentId)]).ToJsonString(), Json(null, stream2.StreamId));
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                try
                {
                    await stream2.NextAsync("UPDATE", TimeSpan.FromSeconds(2));
                    break;
                }
                catch (OperationCanceledException)
                {
                }
            }

            await recorder.SendAsync(newLeader, "RECONCILE implicit", "POST", "/api/v1/scheduler",
                MesosCalls.Reconcile(frameworkId, []).ToJsonString(), Json(null, stream2.StreamId));
            await stream2.NextAsync("UPDATE", Wait);
            await recorder.SendAsync(newLeader, "KILL", "POST", "/api/v1/scheduler",
                MesosCalls.Kill(frameworkId, run.MesosId, offer.AgentId, TimeSpan.FromSeconds(1)).ToJsonString(), Json(null, stream2.StreamId));
            await AcknowledgeUntilAsync(recorder, newLeader, stream2, frameworkId, offer.AgentId, run.MesosId, null, "TASK_KILLED");

            await recorder.SendAsync(newLeader, "TEARDOWN", "POST", "/api/v1/scheduler",
                $$"""{"framework_id":{"value":"{{frameworkId}}"},"type":"TEARDOWN"}""", Json(null, stream2.StreamId));
            await stream2.Ended.Task.WaitAsync(Wait);
        }
        finally
        {
            await RealMesos.RestartMasterAsync(leader);
        }
    }
}
