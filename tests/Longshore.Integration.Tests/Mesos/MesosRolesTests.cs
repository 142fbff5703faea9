using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>A framework subscribed with several roles, against the test master: one offer per agent and role.</summary>
public sealed class MesosRolesTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task TwoRoles_OneAgentOffersInBoth_EachAcceptTakesOffersOfOneRoleAndTasksNameIt()
    {
        await using var master = TestMesosMaster.Start();
        master.HeartbeatSeconds = 1;
        master.AddAgent("agent-1", cpus: 4, mem: 4096, roles: ["batch", "web"]);
        await using var harness = await MesosHarness.StartAsync([master.Uri], options => options with { Roles = ["batch", "web"] });

        // Each role's offer holds 2 cpus: four runs of 0.9 need both offers of the one agent.
        var runs = new List<TaskRun>();
        for (var i = 0; i < 4; i++)
            runs.Add(await harness.SubmitAsync("roles", "sleep 600", cpus: 0.9));
        foreach (var run in runs)
            await harness.WaitForStateAsync(run.MesosId, TaskState.Running, Wait);

        var subscribe = master.Calls.First(c => c.Type == "SUBSCRIBE").Body.GetProperty("subscribe").GetProperty("framework_info");
        Assert.Equal(["batch", "web"], subscribe.GetProperty("roles").EnumerateArray().Select(r => r.GetString()));
        foreach (var accept in master.Calls.Where(c => c.Type == "ACCEPT").Select(c => c.Body.GetProperty("accept")))
        {
            var offerRoles = accept.GetProperty("offer_ids").EnumerateArray().Select(o => master.AcceptedOfferRoles[o.GetProperty("value").GetString()!]).Distinct().ToList();
            var role = Assert.Single(offerRoles);
            var tasks = accept.GetProperty("operations").EnumerateArray().SelectMany(op => op.GetProperty("launch").GetProperty("task_infos").EnumerateArray());
            Assert.All(tasks.SelectMany(t => t.GetProperty("resources").EnumerateArray()),
                resource => Assert.Equal(role, resource.GetProperty("allocation_info").GetProperty("role").GetString()));
        }

        var usedRoles = master.AcceptedOfferRoles.Values.Distinct().Order().ToList();
        Assert.Equal(["batch", "web"], usedRoles);
    }
}
