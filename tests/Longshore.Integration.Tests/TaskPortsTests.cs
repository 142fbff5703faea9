using System.Globalization;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Longshore.Backends.Docker;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests;

/// <summary>Tasks asking for host ports on the local engine: the ports they are given are free, named in their environment, and reachable.</summary>
public sealed partial class TaskPortsTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private readonly LongshoreServer _server = fixture.Server;

    [GeneratedRegex(@"listening on (\d+)")]
    private static partial Regex Listening();

    [Fact]
    public async Task HostNetwork_TaskListensOnPort0_AnswersOnThatHostPort()
    {
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("port"), "echo listening on $PORT0; nc -l -p $PORT0 -e echo pong",
            network: "HOST", ports: 1));

        // The task says which port it got; the same port must then answer on the host.
        var port = 0;
        await _server.WaitUntilAsync(async () =>
        {
            var stdout = JsonDocument.Parse(await _server.Http.GetStringAsync($"/tasks/{id}/logs/")).RootElement.GetProperty("stdout").GetString() ?? "";
            if (Listening().Match(stdout) is not { Success: true } match)
                return false;
            port = int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
            return true;
        });
        // nc may print before it listens: connection refused means try again.
        string? answer = null;
        await Eventually.WaitUntilAsync(async () =>
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", port);
                using var reader = new StreamReader(client.GetStream(), Encoding.ASCII);
                answer = await reader.ReadLineAsync();
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(10));

        Assert.Equal("pong", answer);
        Assert.Equal("TASK_FINISHED", (await _server.WaitForEndAsync(id)).GetProperty("mesos_state").GetString());
    }

    [Fact]
    public async Task BridgeNetwork_TwoPorts_EachPublishedToTheSameNumberInside_AndNamedInTheEnvironment()
    {
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("ports"), "sleep 60", ports: 2));
        await _server.WaitForStateAsync(id, state => state == "TASK_RUNNING");

        using var client = TestEngine.CreateClient();
        var inspect = await client.Containers.InspectContainerAsync(DockerBackend.ContainerName(id));
        await _server.Http.PostAsync($"/tasks/{id}/kill/", null);

        var env = inspect.Config!.Env.Select(line => line.Split('=', 2)).ToDictionary(pair => pair[0], pair => pair[1]);
        var ports = new[] { int.Parse(env["PORT0"], CultureInfo.InvariantCulture), int.Parse(env["PORT1"], CultureInfo.InvariantCulture) };
        Assert.NotEqual(ports[0], ports[1]);
        Assert.Equal($"{ports[0]},{ports[1]}", env["PORTS"]);
        Assert.Equal(env["PORT0"], env["PORT"]);
        var bindings = inspect.HostConfig!.PortBindings;
        Assert.Equal(ports.Select(port => $"{port}/tcp").Order(), bindings.Keys.Order());
        Assert.All(ports, port => Assert.Equal($"{port}", Assert.Single(bindings[$"{port}/tcp"]).HostPort));
    }

    [Fact]
    public async Task TooManyPorts_Refused400NamingTheField()
    {
        using var response = await _server.Http.PostAsJsonAsync("/tasks/", Tasks.Definition(Families.New("ports"), "true", ports: 17));

        Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("ports: must be between 0 and 16, got 17", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
