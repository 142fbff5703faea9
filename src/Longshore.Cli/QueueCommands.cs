using System.CommandLine;
using System.Text.Json.Nodes;

namespace Longshore.Cli;

/// <summary><c>longshore queue create|ls|get|enable|disable|rm</c>.</summary>
internal static class QueueCommands
{
    public static Command Create(ClientOptions options)
    {
        var queue = new Command("queue", "Queues: turn messages from a source into tasks");
        var file = new Option<string>("--file", "-f") { Description = "Queue definition (JSON, Hippo shape); - reads standard input", Required = true };
        var create = new Command("create", "Create a queue from a file") { file };
        options.SetAction(create, async (result, client, json, cancellationToken) =>
        {
            var created = await client.PostAsync("/queues/", await ClientOptions.ReadJsonFileAsync(result.GetValue(file)!, cancellationToken), cancellationToken);
            if (json)
                Output.Json(Console.Out, created);
            else
                Console.WriteLine(Output.Text(created["id"]));
            return ExitCodes.Ok;
        });
        queue.Subcommands.Add(create);

        var ls = new Command("ls", "Every queue with its status, running count, backlog and last error");
        options.SetAction(ls, async (result, client, json, cancellationToken) =>
        {
            var queues = await client.GetAsync("/queues/", cancellationToken);
            if (json)
            {
                Output.Json(Console.Out, queues);
                return ExitCodes.Ok;
            }

            Output.Table(Console.Out, ["QUEUE", "TYPE", "STATUS", "RUNNING", "BACKLOG", "LAG", "LAST ERROR"], queues.AsArray().Select(q => (IReadOnlyList<string>)
            [
                Output.Text(q!["id"]), Output.Text(q["queue"]?["type"]), Output.Text(q["queue"]?["status"]), Output.Text(q["stats"]?["running"]),
                Output.Text(q["stats"]?["backlog"]), Output.Text(q["stats"]?["lag_seconds"]) + "s", Output.Text(q["stats"]?["last_error"]),
            ]));
            return ExitCodes.Ok;
        });
        queue.Subcommands.Add(ls);

        queue.Subcommands.Add(OnOne(options, "get", "One queue", "", null));
        queue.Subcommands.Add(OnOne(options, "enable", "Start polling the queue", "enable/", null));
        queue.Subcommands.Add(OnOne(options, "disable", "Stop polling the queue (tasks already made keep running)", "disable/", null));
        queue.Subcommands.Add(OnOne(options, "rm", "Delete the queue (its tasks stay)", "", HttpMethod.Delete));
        return queue;
    }

    private static Command OnOne(ClientOptions options, string name, string description, string suffix, HttpMethod? method)
    {
        var id = new Argument<string>("queue");
        var command = new Command(name, description) { id };
        options.SetAction(command, async (result, client, json, cancellationToken) =>
        {
            var path = $"/queues/{Uri.EscapeDataString(result.GetValue(id)!)}/{suffix}";
            JsonNode answer = method == HttpMethod.Delete ? await client.DeleteAsync(path, cancellationToken) : await client.GetAsync(path, cancellationToken);
            // Hippo's answers: {"enabled": id}, {"disabled": id}, {"deleted": id}.
            if (json || name == "get" || (answer["enabled"] ?? answer["disabled"] ?? answer["deleted"]) is not { } queueId)
                Output.Json(Console.Out, answer);
            else
                Console.WriteLine($"{Output.Text(queueId)} {(answer["enabled"] is not null ? "ENABLED" : answer["disabled"] is not null ? "DISABLED" : "deleted")}");
            return ExitCodes.Ok;
        });
        return command;
    }
}
