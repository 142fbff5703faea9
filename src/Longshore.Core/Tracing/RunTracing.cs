using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Longshore.Core.Tasks;

namespace Longshore.Core.Tracing;

/// <summary>
/// One trace per queue message batch (every attempt of its task included) or per submitted task run, from the poll to
/// the settling of the message. Its steps happen in different loops, minutes apart, and possibly on another instance
/// after a takeover, so nothing is carried between them: the trace id is derived from what every step knows anyway (the
/// batch's message key, else the run's id), and so is one parent span id that every span of the trace names: it stands
/// for the message (or task) as a whole and is not itself exported. Each span is written when its step ends, with the
/// step's real start time. Exported by OTLP when the server is configured for it (<c>OTEL_EXPORTER_OTLP_ENDPOINT</c>);
/// without a listener nothing is recorded.
/// </summary>
public static class RunTracing
{
    public const string SourceName = "Longshore";

    /// <summary>The tag every span carries: the run it is about (for a batch's receipt, its first run).</summary>
    public const string RunIdTag = "longshore.run_id";

    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>A batch's receipt from its source (received → task recorded).</summary>
    public static void Received(string queueId, string messageKey, TaskRun run, int messages, DateTimeOffset received, DateTimeOffset recorded) =>
        Write("longshore.queue.receive", ActivityKind.Consumer, TraceOf(messageKey, run), received, recorded, run,
            ("longshore.queue", queueId), ("longshore.message_key", messageKey), ("messaging.batch.message_count", messages));

    /// <summary>A run's wait for admission (recorded → TASK_STAGING).</summary>
    public static void Admitted(TaskRun run, DateTimeOffset staged) =>
        Write("longshore.task.wait", ActivityKind.Internal, TraceOf(run.MessageKey, run), run.CreatedAt, staged, run,
            ("longshore.attempt", run.Attempt));

    /// <summary>The engine starting a run (TASK_STAGING → TASK_RUNNING).</summary>
    public static void Launched(string mesosId, string? messageKey, string engine, DateTimeOffset staged, DateTimeOffset running) =>
        Write("longshore.task.launch", ActivityKind.Client, TraceOf(messageKey, mesosId), staged, running, null,
            (RunIdTag, mesosId), ("longshore.engine", engine));

    /// <summary>A run from TASK_RUNNING (or its launch, if it never ran) to its end.</summary>
    public static void Ended(TaskRun run, TaskState end, int? exitCode, string? reason, DateTimeOffset from, DateTimeOffset ended)
    {
        using var activity = Start("longshore.task.run", ActivityKind.Internal, TraceOf(run.MessageKey, run), from, run,
            ("longshore.state", end.ToWire()), ("longshore.attempt", run.Attempt), ("process.exit.code", exitCode));
        if (activity is null)
            return;
        if (end != TaskState.Finished)
            activity.SetStatus(ActivityStatusCode.Error, reason ?? end.ToWire());
        activity.SetEndTime(ended.UtcDateTime);
    }

    /// <summary>The batch's messages acknowledged or released at the source.</summary>
    public static void Settled(string queueId, string messageKey, string? runId, bool acknowledged, DateTimeOffset started, DateTimeOffset settled) =>
        Write("longshore.queue.settle", ActivityKind.Producer, TraceOf(messageKey, runId ?? messageKey), started, settled, null,
            ("longshore.queue", queueId), ("longshore.message_key", messageKey), ("longshore.outcome", acknowledged ? "acknowledged" : "released"), (RunIdTag, runId));

    private static ActivityTraceId TraceOf(string? messageKey, TaskRun run) => TraceOf(messageKey, run.MesosId);

    /// <summary>The batch's message key (a GUID) is the trace id; a run without one takes a hash of its id.</summary>
    private static ActivityTraceId TraceOf(string? messageKey, string mesosId)
    {
        if (messageKey is not null && Guid.TryParseExact(messageKey, "N", out var key))
            return ActivityTraceId.CreateFromBytes(key.ToByteArray());
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(messageKey ?? mesosId), hash);
        return ActivityTraceId.CreateFromBytes(hash[..16]);
    }

    /// <summary>The parent every span of the trace names, derived from the trace id.</summary>
    private static ActivitySpanId ParentOf(ActivityTraceId trace)
    {
        Span<byte> bytes = stackalloc byte[16];
        trace.CopyTo(bytes);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(bytes, hash);
        return ActivitySpanId.CreateFromBytes(hash[..8]);
    }

    private static void Write(string name, ActivityKind kind, ActivityTraceId trace, DateTimeOffset start, DateTimeOffset end, TaskRun? run,
        params (string Key, object? Value)[] tags)
    {
        using var activity = Start(name, kind, trace, start, run, tags);
        activity?.SetEndTime(end.UtcDateTime);
    }

    private static Activity? Start(string name, ActivityKind kind, ActivityTraceId trace, DateTimeOffset start, TaskRun? run, params (string Key, object? Value)[] tags)
    {
        if (!Source.HasListeners())
            return null;
        var parent = new ActivityContext(trace, ParentOf(trace), ActivityTraceFlags.Recorded, isRemote: true);
        var activity = Source.CreateActivity(name, kind, parent);
        if (activity is null)
            return null;
        activity.SetStartTime(start.UtcDateTime);
        if (run is not null)
            activity.SetTag(RunIdTag, run.MesosId);
        foreach (var (key, value) in tags)
        {
            if (value is not null)
                activity.SetTag(key, value);
        }

        return activity.Start();
    }
}
