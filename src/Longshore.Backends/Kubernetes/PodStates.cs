using System.Globalization;
using k8s.Models;
using Longshore.Core.Tasks;

namespace Longshore.Backends.Kubernetes;

/// <summary>What a pod's status says about its run.</summary>
public sealed record PodReport(TaskState State, int? ExitCode = null, string? Reason = null)
{
    /// <summary>The node the pod is bound to, once it is.</summary>
    public string? Node { get; init; }
}

/// <summary>
/// Maps a pod's status (as the watch delivers it) onto the run's state. Pure: the pod, whether it was deleted and by
/// whom, and the time now are all it needs, so it is tested without a cluster.
/// </summary>
public static class PodStates
{
    private static readonly string[] ImagePullWaits = ["ErrImagePull", "ImagePullBackOff"];
    private static readonly string[] ImageNameWaits = ["InvalidImageName", "ErrImageNeverPull"];
    private static readonly string[] ConfigWaits = ["CreateContainerConfigError", "CreateContainerError", "RunContainerError"];

    // Pull errors that say the image is not there (or never will be for us): no retry changes them.
    private static readonly string[] DefinitePullFailures =
        ["not found", "manifest unknown", "repository does not exist", "pull access denied", "unauthorized", "invalid reference format", "denied"];

    // A pod the kubelet or the control plane gave up on, not the task: a system fault.
    private static readonly string[] SystemPodReasons = ["Evicted", "NodeLost", "Shutdown", "Terminated", "UnexpectedAdmissionError", "NodeAffinity", "Preempting"];

    /// <param name="pod">The pod as last seen.</param>
    /// <param name="deleted">The watch said DELETED (or a re-list no longer has it).</param>
    /// <param name="killedByUs">Longshore asked for the deletion (a kill).</param>
    /// <param name="now">The time now, for how long an image has failed to pull.</param>
    /// <param name="pullGrace">How long pull and container-config errors may last before the run fails.</param>
    public static PodReport Map(V1Pod pod, bool deleted, bool killedByUs, DateTimeOffset now, TimeSpan pullGrace)
    {
        var status = pod.Status;
        var node = pod.Spec?.NodeName;
        var terminated = Task(pod)?.State?.Terminated;
        if (deleted && !(status?.Phase is "Succeeded" or "Failed"))
        {
            return killedByUs
                ? new PodReport(TaskState.Killed, terminated?.ExitCode, "the pod was deleted") { Node = node }
                : new PodReport(TaskState.Lost, null, "the pod vanished: deleted by someone else while the run was active") { Node = node };
        }

        switch (status?.Phase)
        {
            case "Succeeded":
                return new PodReport(TaskState.Finished, terminated?.ExitCode ?? 0, $"Container exited with status {terminated?.ExitCode ?? 0}") { Node = node };
            case "Failed":
                return Failed(pod, terminated, killedByUs) with { Node = node };
            case "Running":
                return new PodReport(TaskState.Running) { Node = node };
            case "Unknown":
                return new PodReport(TaskState.Unreachable, null, $"the pod's node does not report it: {status.Reason} {status.Message}".TrimEnd()) { Node = node };
        }

        if (string.IsNullOrEmpty(node))
        {
            var scheduled = status?.Conditions?.FirstOrDefault(c => c.Type == "PodScheduled");
            return scheduled is { Status: "False", Reason: "Unschedulable" }
                ? new PodReport(TaskState.Staging, null, "waiting for a node: " + scheduled.Message)
                : new PodReport(TaskState.Staging);
        }

        var waiting = Task(pod)?.State?.Waiting;
        var image = pod.Spec?.Containers?.FirstOrDefault()?.Image;
        var failingFor = now - (pod.Metadata?.CreationTimestamp is { } created ? new DateTimeOffset(DateTime.SpecifyKind(created, DateTimeKind.Utc)) : now);
        if (waiting?.Reason is { } reason)
        {
            if (ImageNameWaits.Contains(reason))
                return new PodReport(TaskState.Failed, null, $"image '{image}' cannot be used: {reason}: {waiting.Message}") { Node = node };
            if (ImagePullWaits.Contains(reason))
            {
                var definite = DefinitePullFailures.Any(m => waiting.Message?.Contains(m, StringComparison.OrdinalIgnoreCase) == true);
                if (definite || failingFor >= pullGrace)
                {
                    var how = definite ? "" : $" for {Seconds(failingFor)} s";
                    return new PodReport(TaskState.Failed, null, $"image '{image}' could not be pulled{how}: {reason}: {waiting.Message}") { Node = node };
                }

                return new PodReport(TaskState.Starting, null, $"pulling image '{image}': {reason}: {waiting.Message}") { Node = node };
            }

            if (ConfigWaits.Contains(reason))
            {
                return failingFor >= pullGrace
                    ? new PodReport(TaskState.Failed, null, $"the container could not be created: {reason}: {waiting.Message}") { Node = node }
                    : new PodReport(TaskState.Starting, null, $"{reason}: {waiting.Message}") { Node = node };
            }
        }

        return new PodReport(TaskState.Starting) { Node = node };
    }

    private static PodReport Failed(V1Pod pod, V1ContainerStateTerminated? terminated, bool killedByUs)
    {
        var status = pod.Status!;
        if (killedByUs)
            return new PodReport(TaskState.Killed, terminated?.ExitCode, $"the pod was deleted (exit status {terminated?.ExitCode.ToString(CultureInfo.InvariantCulture) ?? "unknown"})");
        if (status.Reason is { } podReason && SystemPodReasons.Contains(podReason))
            return new PodReport(TaskState.Lost, terminated?.ExitCode, $"{(podReason == "Evicted" ? "evicted by the kubelet" : podReason)}: {status.Message}".TrimEnd(' ', ':'));
        if (terminated is null)
            return new PodReport(TaskState.Lost, null, $"the pod failed without its container ending: {status.Reason} {status.Message}".TrimEnd());
        var exit = terminated.ExitCode;
        if (terminated.Reason == "OOMKilled")
        {
            var limit = pod.Spec?.Containers?.FirstOrDefault()?.Resources?.Limits?.TryGetValue("memory", out var memory) == true
                ? (memory.ToDecimal() / (1024 * 1024)).ToString("0.##", CultureInfo.InvariantCulture)
                : "?";
            return new PodReport(TaskState.Failed, exit, $"out of memory: the container went over its {limit} MB memory limit and was killed (exit status {exit})");
        }

        var detail = terminated.Reason is null or "Error" ? "" : $": {terminated.Reason} {terminated.Message}".TrimEnd();
        return new PodReport(TaskState.Failed, exit, $"Container exited with status {exit}{detail}");
    }

    private static V1ContainerStatus? Task(V1Pod pod) => pod.Status?.ContainerStatuses?.FirstOrDefault(c => c.Name == PodSpecs.ContainerName);

    private static string Seconds(TimeSpan span) => Math.Round(span.TotalSeconds).ToString(CultureInfo.InvariantCulture);
}
