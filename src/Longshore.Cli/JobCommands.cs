using System.CommandLine;
using System.Text.Json.Nodes;

namespace Longshore.Cli;

/// <summary><c>longshore job create|ls|get|scale|rm</c>.</summary>
internal static class JobCommands
{
    public static Command Create(ClientOptions options)
    {
        var job = new Command("job", "Replicated jobs: keep N copies of a container running");
        job.Subcommands.Add(CreateJob(options));
        job.Subcommands.Add(List(options));
        job.Subcommands.Add(Get(options));
        job.Subcommands.Add(Scale(options));
        job.Subcommands.Add(Remove(options));
        return job;
    }

    private static Command CreateJob(ClientOptions options)
    {
        var file = new Option<string>("--file", "-f") { Description = "Job definition (JSON, taurus shape); - reads standard input", Required = true };
        var create = new Command("create", "Create a job from a file") { file };
        options.SetAction(create, async (result, client, json, cancellationToken) =>
        {
            var definition = await ClientOptions.ReadJsonFileAsync(result.GetValue(file)!, cancellationToken);
            Print(await client.PostAsync("/job/new", definition, cancellationToken), json);
            return ExitCodes.Ok;
        });
        return create;
    }

    private static Command List(ClientOptions options)
    {
        var ls = new Command("ls", "Every job");
        options.SetAction(ls, async (result, client, json, cancellationToken) =>
        {
            var jobs = await client.GetAsync("/job/all", cancellationToken);
            if (json)
            {
                Output.Json(Console.Out, jobs);
                return ExitCodes.Ok;
            }

            Output.Table(Console.Out, ["JOB", "STATE", "GROUPS (running/wanted)", "CRASH LOOP"], jobs.AsArray().Select(job => (IReadOnlyList<string>)
            [
                Output.Text(job!["id"]), Output.Text(job["job_state"]),
                string.Join(", ", job["groups"]!.AsArray().Select(g => $"{Output.Text(g!["key"])} {Output.Text(g["running"])}/{Output.Text(g["replicas"])}")),
                job["groups"]!.AsArray().Any(g => g!["crash_loop"]!.GetValue<bool>()) ? "yes" : "no",
            ]));
            return ExitCodes.Ok;
        });
        return ls;
    }

    private static Command Get(ClientOptions options)
    {
        var id = new Argument<string>("job");
        var get = new Command("get", "A job with its replicas") { id };
        options.SetAction(get, async (result, client, json, cancellationToken) =>
        {
            Print(await client.GetAsync($"/job/{Uri.EscapeDataString(result.GetValue(id)!)}", cancellationToken), json);
            return ExitCodes.Ok;
        });
        return get;
    }

    private static Command Scale(ClientOptions options)
    {
        var id = new Argument<string>("job");
        var replicas = new Argument<int>("replicas") { Description = "Replicas wanted" };
        var group = new Option<string?>("--group") { Description = "Task group as ROLE-ENVIRONMENT (needed when the job has several)" };
        var scale = new Command("scale", "Change a task group's replica count") { id, replicas, group };
        options.SetAction(scale, async (result, client, json, cancellationToken) =>
        {
            var jobId = Uri.EscapeDataString(result.GetValue(id)!);
            var job = await client.GetAsync($"/job/{jobId}", cancellationToken);
            var groups = job["tasks"]!.AsArray();
            var wanted = result.GetValue(group);
            var matches = groups.Where(g => wanted is null || $"{Output.Text(g!["role"])}-{Output.Text(g["environment"])}" == wanted).ToList();
            if (matches.Count != 1)
            {
                var names = string.Join(", ", groups.Select(g => $"{Output.Text(g!["role"])}-{Output.Text(g["environment"])}"));
                throw new CliException(ExitCodes.Usage, wanted is null
                    ? $"--group: job has {groups.Count} task groups ({names}); name one"
                    : $"--group: no task group '{wanted}' (has {names})");
            }

            matches[0]!["replicas"] = result.GetValue(replicas);
            Print(await client.PutAsync($"/job/{jobId}", new JsonObject { ["tasks"] = groups.DeepClone() }, cancellationToken), json);
            return ExitCodes.Ok;
        });
        return scale;
    }

    private static Command Remove(ClientOptions options)
    {
        var id = new Argument<string>("job");
        var rm = new Command("rm", "Stop a job: kill every replica") { id };
        options.SetAction(rm, async (result, client, json, cancellationToken) =>
        {
            Print(await client.DeleteAsync($"/job/{Uri.EscapeDataString(result.GetValue(id)!)}", cancellationToken), json);
            return ExitCodes.Ok;
        });
        return rm;
    }

    private static void Print(JsonNode job, bool json)
    {
        if (json)
        {
            Output.Json(Console.Out, job);
            return;
        }

        Console.WriteLine($"{Output.Text(job["id"])}: {Output.Text(job["job_state"])} (generation {Output.Text(job["generation"])})");
        Output.Table(Console.Out, ["GROUP", "WANTED", "RUNNING", "PENDING", "CRASH LOOP", "LAST EXIT CODES"], job["groups"]!.AsArray().Select(g => (IReadOnlyList<string>)
        [
            Output.Text(g!["key"]), Output.Text(g["replicas"]), Output.Text(g["running"]), Output.Text(g["pending"]),
            g["crash_loop"]!.GetValue<bool>() ? "yes" : "no", string.Join(" ", g["last_exit_codes"]!.AsArray().Select(Output.Text)),
        ]));
    }
}
