using Longshore.Core.Execution;
using Longshore.Core.Jobs;
using Longshore.Core.Tasks;

namespace Longshore.Server.Jobs;

/// <summary>Command checks run inside the container through the engine; HTTP checks GET 127.0.0.1 (host-network replicas).</summary>
internal sealed class HealthProbe(IExecutionBackend backend, IHttpClientFactory httpClients) : IHealthProbe
{
    public async Task<(bool Healthy, string Detail)> ProbeAsync(TaskRun run, HealthCheck check, CancellationToken cancellationToken = default)
    {
        if (check.Type == "http")
        {
            var client = httpClients.CreateClient("health");
            using var response = await client.GetAsync(new Uri($"http://127.0.0.1:{check.Port}{check.Path}"), cancellationToken);
            var status = (int)response.StatusCode;
            return (status is >= 200 and < 400, $"GET 127.0.0.1:{check.Port}{check.Path} gave {status}");
        }

        if (backend is not ITaskExec exec)
            return (true, $"the {backend.Name} engine cannot run commands in containers; check skipped");
        var (exitCode, output) = await exec.ExecAsync(run, check.Command!, cancellationToken);
        var text = output.Trim();
        return (exitCode == 0, $"'{string.Join(' ', check.Command!)}' exited {exitCode}{(text.Length == 0 ? string.Empty : ": " + (text.Length > 200 ? text[..200] : text))}");
    }
}
