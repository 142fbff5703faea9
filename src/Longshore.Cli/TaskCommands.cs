using System.CommandLine;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Longshore.Cli;

/// <summary><c>longshore task run|ls|get|kill|logs</c>.</summary>
internal static partial class TaskCommands
{
    private static readonly string[] EndStates =
        ["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"];

    public static Command Create(ClientOptions options)
    {
        var task = new Command("task", "Run, list, inspect, kill one-off tasks and read their output");
        task.Subcommands.Add(Run(options));
        task.Subcommands.Add(List(options));
        task.Subcommands.Add(Get(options));
        task.Subcommands.Add(Kill(options));
        task.Subcommands.Add(Logs(options));
        return task;
    }

    private static Command Run(ClientOptions options)
    {
        var image = new Argument<string>("image") { Description = "Container image" };
        var command = new Argument<string[]>("command")
        {
            Description = "Command after --: several arguments run as exactly that argument vector (as after docker run IMAGE); one runs as a shell command line",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var id = new Option<string?>("--id") { Description = "Task family id (default: from the image name)" };
        var cpus = new Option<double?>("--cpus") { Description = "CPU cores (0.01..12)" };
        var mem = new Option<double?>("--mem") { Description = "Memory limit in MB (4..64000)" };
        var env = new Option<string[]>("--env", "-e") { Description = "NAME=VALUE, repeatable", AllowMultipleArgumentsPerToken = false };
        var retries = new Option<int?>("--retries") { Description = "Runs again after a failure, this many times" };
        var wait = new Option<bool>("--wait") { Description = "Follow the output and exit with the task's exit code" };
        var run = new Command("run", "Start a one-off task: longshore task run IMAGE [--wait] -- CMD ...") { image, command, id, cpus, mem, env, retries, wait };
        options.SetAction(run, async (result, client, json, cancellationToken) =>
        {
            var definition = new JsonObject
            {
                ["id"] = result.GetValue(id) ?? FamilyFromImage(result.GetValue(image)!),
                ["container"] = new JsonObject { ["type"] = "DOCKER", ["docker"] = new JsonObject { ["image"] = result.GetValue(image) } },
            };
            if (result.GetValue(command) is { Length: > 0 } argv)
                definition["cmd"] = CommandLine(argv);
            if (result.GetValue(cpus) is { } c)
                definition["cpus"] = c;
            if (result.GetValue(mem) is { } m)
                definition["mem"] = m;
            if (result.GetValue(retries) is { } r)
                definition["task_retries"] = r;
            if (result.GetValue(env) is { Length: > 0 } pairs)
            {
                var variables = new JsonObject();
                foreach (var pair in pairs)
                {
                    var equals = pair.IndexOf('=', StringComparison.Ordinal);
                    if (equals <= 0)
                        throw new CliException(ExitCodes.Usage, $"--env: '{pair}' must be NAME=VALUE");
                    variables[pair[..equals]] = pair[(equals + 1)..];
                }

                definition["env"] = variables;
            }

            var created = await client.PostAsync("/tasks/", definition, cancellationToken);
            var mesosId = created["mesos_id"]!.GetValue<string>();
            if (!result.GetValue(wait))
            {
                if (json)
                    Output.Json(Console.Out, created);
                else
                    Console.WriteLine(mesosId);
                return ExitCodes.Ok;
            }

            await Console.Error.WriteLineAsync($"longshore: started {mesosId}");
            return await WaitAsync(client, mesosId, json, cancellationToken);
        });
        return run;
    }

    /// <summary>Follows the run (and its retries) to its end, streaming output, and turns the end into an exit code.</summary>
    private static async Task<int> WaitAsync(ApiClient client, string mesosId, bool json, CancellationToken cancellationToken)
    {
        while (true)
        {
            var run = await WaitUntilAsync(client, mesosId, state => state is "TASK_RUNNING" or "TASK_KILLING" || EndStates.Contains(state), cancellationToken);
            if (!json)
                await client.StreamAsync($"/tasks/{mesosId}/logs/?follow=true", Console.Out, cancellationToken);
            run = await WaitUntilAsync(client, mesosId, EndStates.Contains, cancellationToken);
            if (run["retried_as"]?.GetValue<string>() is { } next)
            {
                await Console.Error.WriteLineAsync($"longshore: {mesosId} ended {Output.Text(run["mesos_state"])} ({Output.Text(run["reason"])}); retrying as {next}");
                mesosId = next;
                continue;
            }

            if (json)
                Output.Json(Console.Out, run);
            var state = run["mesos_state"]!.GetValue<string>();
            if (state == "TASK_FINISHED")
                return ExitCodes.Ok;
            await Console.Error.WriteLineAsync($"longshore: {mesosId} ended {state}: {Output.Text(run["reason"])}");
            return run["exit_code"]?.GetValue<int>() is { } code and > 0 and < 256 ? code : ExitCodes.TaskFailed;
        }
    }

    private static async Task<JsonNode> WaitUntilAsync(ApiClient client, string mesosId, Func<string, bool> done, CancellationToken cancellationToken)
    {
        var announced = false;
        while (true)
        {
            var run = await client.GetAsync($"/tasks/{mesosId}/", cancellationToken);
            var state = run["mesos_state"]!.GetValue<string>();
            if (done(state))
                return run;
            if (!announced && state == "WAITING_ON_OFFERS")
            {
                await Console.Error.WriteLineAsync($"longshore: {mesosId} is waiting to launch" +
                    (run["not_before"] is { } notBefore ? $" (not before {Output.Text(notBefore)})" : string.Empty));
                announced = true;
            }

            await Task.Delay(250, cancellationToken);
        }
    }

    private static Command List(ClientOptions options)
    {
        var state = new Option<string?>("--state") { Description = "Only runs in this state, e.g. TASK_RUNNING" };
        var id = new Option<string?>("--id") { Description = "Only runs of this task family id" };
        var limit = new Option<int>("--limit") { Description = "How many (1..1000)", DefaultValueFactory = _ => 50 };
        var ls = new Command("ls", "Recent runs, newest first") { state, id, limit };
        options.SetAction(ls, async (result, client, json, cancellationToken) =>
        {
            var query = $"/tasks/?limit={result.GetValue(limit)}"
                + (result.GetValue(state) is { } s ? "&state=" + Uri.EscapeDataString(s) : string.Empty)
                + (result.GetValue(id) is { } f ? "&id=" + Uri.EscapeDataString(f) : string.Empty);
            var runs = await client.GetAsync(query, cancellationToken);
            if (json)
            {
                Output.Json(Console.Out, runs);
                return ExitCodes.Ok;
            }

            var now = TimeProvider.System.GetUtcNow();
            Output.Table(Console.Out, ["MESOS_ID", "STATE", "EXIT", "ATTEMPT", "CREATED", "REASON"], runs.AsArray().Select(run => (IReadOnlyList<string>)
            [
                Output.Text(run!["mesos_id"]), Output.Text(run["mesos_state"]), Output.Text(run["exit_code"]), Output.Text(run["attempt"]),
                Output.Age(run["created_at"], now), Shorten(Output.Text(run["reason"]), 60),
            ]));
            return ExitCodes.Ok;
        });
        return ls;
    }

    private static Command Get(ClientOptions options)
    {
        var mesosId = new Argument<string>("mesos-id");
        var get = new Command("get", "One run in full") { mesosId };
        options.SetAction(get, async (result, client, json, cancellationToken) =>
        {
            var run = await client.GetAsync($"/tasks/{Uri.EscapeDataString(result.GetValue(mesosId)!)}/", cancellationToken);
            if (json)
            {
                Output.Json(Console.Out, run);
                return ExitCodes.Ok;
            }

            Output.Table(Console.Out, ["FIELD", "VALUE"], run.AsObject().Select(pair => (IReadOnlyList<string>)[pair.Key, Output.Text(pair.Value)]));
            return ExitCodes.Ok;
        });
        return get;
    }

    private static Command Kill(ClientOptions options)
    {
        var mesosId = new Argument<string>("mesos-id");
        var kill = new Command("kill", "Kill a run: SIGTERM, then SIGKILL after the server's grace period") { mesosId };
        options.SetAction(kill, async (result, client, json, cancellationToken) =>
        {
            var path = $"/tasks/{Uri.EscapeDataString(result.GetValue(mesosId)!)}/";
            // The kill answers as Hippo does ({"killed": id}); the run shows where it is now.
            await client.PostAsync(path + "kill/", null, cancellationToken);
            var run = await client.GetAsync(path, cancellationToken);
            if (json)
                Output.Json(Console.Out, run);
            else
                Console.WriteLine($"{Output.Text(run["mesos_id"])} {Output.Text(run["mesos_state"])}");
            return ExitCodes.Ok;
        });
        return kill;
    }

    private static Command Logs(ClientOptions options)
    {
        var mesosId = new Argument<string>("mesos-id");
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing output until the run ends" };
        var logs = new Command("logs", "A run's output (stdout, then stderr)") { mesosId, follow };
        options.SetAction(logs, async (result, client, json, cancellationToken) =>
        {
            var id = Uri.EscapeDataString(result.GetValue(mesosId)!);
            if (result.GetValue(follow))
            {
                await client.StreamAsync($"/tasks/{id}/logs/?follow=true", Console.Out, cancellationToken);
                return ExitCodes.Ok;
            }

            var output = await client.GetAsync($"/tasks/{id}/logs/", cancellationToken);
            if (json)
            {
                Output.Json(Console.Out, output);
                return ExitCodes.Ok;
            }

            await Console.Out.WriteAsync(Output.Text(output["stdout"]));
            await Console.Error.WriteAsync(Output.Text(output["stderr"]));
            return ExitCodes.Ok;
        });
        return logs;
    }

    [GeneratedRegex("[^A-Za-z0-9_.-]+")]
    private static partial Regex NotIdCharacters();

    [GeneratedRegex("^[A-Za-z0-9_@%+:,./-]+\\z")]
    private static partial Regex ShellSafe();

    /// <summary>
    /// The task's <c>cmd</c> (run as <c>sh -c</c>) for the words after <c>--</c>. One word is a shell command line and runs
    /// as written (<c>-- 'echo hi; exit 3'</c>). Several are an argument vector, as after <c>docker run IMAGE</c>: each is
    /// quoted, so the shell runs exactly those arguments (<c>-- sh -c 'echo hi; exit 7'</c>), spaces, quotes, <c>$</c> and
    /// empty ones included.
    /// </summary>
    internal static string CommandLine(IReadOnlyList<string> argv) =>
        argv.Count == 1 ? argv[0] : string.Join(' ', argv.Select(Quote));

    /// <summary>One word for a POSIX shell: as it is when it has nothing the shell would read, else in single quotes (a <c>'</c> as <c>'\''</c>).</summary>
    internal static string Quote(string word) =>
        ShellSafe().IsMatch(word) ? word : "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>"registry.example/team/app:1.2" → "app".</summary>
    internal static string FamilyFromImage(string image)
    {
        var name = image.Split('/')[^1].Split('@')[0].Split(':')[0];
        name = NotIdCharacters().Replace(name, "-").Trim('-', '.', '_');
        return name.Length == 0 ? "task" : name[..Math.Min(name.Length, 60)];
    }

    private static string Shorten(string text, int length) => text.Length <= length ? text : text[..(length - 1)] + "…";
}
