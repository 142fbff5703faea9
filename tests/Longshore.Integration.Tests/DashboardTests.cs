using System.Net.Http.Json;
using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Longshore.Integration.Tests;

/// <summary>The dashboard in real headless Chromium against a real server and engine.</summary>
public sealed class DashboardTests(SharedServerFixture fixture, BrowserFixture browser) : IClassFixture<SharedServerFixture>, IClassFixture<BrowserFixture>
{
    private readonly LongshoreServer _server = fixture.Server;

    private string Url => $"http://127.0.0.1:{_server.Port}/";

    [Fact]
    public async Task TasksAppearLive_OpenOne_ReadItsLog()
    {
        var page = await NewPageAsync();
        var family = Families.New("dash");
        await page.GotoAsync(Url + "#/tasks?id=" + family);
        await page.GetByRole(AriaRole.Heading, new() { Name = "Tasks" }).WaitForAsync();

        // Posted behind the page's back: it must show up without a reload.
        var id = await _server.PostTaskAsync(Tasks.Definition(family, "echo dashboard-log-line; sleep 1"));
        var row = page.Locator($"tr[data-mesos-id='{id}']");
        await row.WaitForAsync(new() { Timeout = 15000 });
        await Assertions.Expect(row.Locator(".state")).ToHaveTextAsync("TASK_FINISHED", new() { Timeout = 30000 });
        await BrowserFixture.ScreenshotAsync(page, "tasks");

        await row.GetByRole(AriaRole.Link).ClickAsync();
        await Assertions.Expect(page.Locator("#log")).ToContainTextAsync("dashboard-log-line", new() { Timeout = 15000 });
        await Assertions.Expect(page.Locator("#kill")).ToBeDisabledAsync();
        await BrowserFixture.ScreenshotAsync(page, "task");
    }

    [Fact]
    public async Task CreateAQueueInTheForm_ItsTasksAppearLive_OpenOne_ReadItsLog_KillIt()
    {
        var id = Families.New("formq");
        var page = await NewPageAsync();
        page.Dialog += async (_, dialog) => await dialog.AcceptAsync();
        await page.GotoAsync(Url + "#/queues");
        await page.GetByRole(AriaRole.Heading, new() { Name = "Create a queue" }).WaitForAsync();

        await page.GetByLabel("Name (task id)").FillAsync(id);
        await page.GetByLabel("Type").SelectOptionAsync("cron");
        await page.GetByLabel("Image").FillAsync(TestEngine.Image);
        await page.GetByLabel("Command").FillAsync("echo got $HIPPO_DATA; sleep 600");
        await page.GetByLabel("Cron string (5 fields, or 6 with seconds first)").FillAsync("*/3 * * * * *");
        await BrowserFixture.ScreenshotAsync(page, "queue-form");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create queue" }).ClickAsync();
        var queueRow = page.Locator($"tr[data-queue='{id}']");
        await Assertions.Expect(queueRow).ToContainTextAsync("ENABLED", new() { Timeout = 30000 });
        await BrowserFixture.ScreenshotAsync(page, "queues");

        await queueRow.GetByRole(AriaRole.Link).ClickAsync();
        var firstTask = page.Locator("tbody tr[data-mesos-id]").Last;
        await firstTask.WaitForAsync(new() { Timeout = 20000 });
        await firstTask.GetByRole(AriaRole.Link).ClickAsync();
        // The cron payload is the fire time in Unix seconds, as Hippo gives it.
        await Assertions.Expect(page.Locator("#log")).ToContainTextAsync(new System.Text.RegularExpressions.Regex("got [0-9]{10}"), new() { Timeout = 20000 });
        await page.Locator("#kill").ClickAsync();
        await Assertions.Expect(page.Locator("main .state").First).ToHaveTextAsync("TASK_KILLED", new() { Timeout = 30000 });
        await BrowserFixture.ScreenshotAsync(page, "queue-task-killed");

        await page.GotoAsync(Url + "#/queues");
        await page.Locator($"tr[data-queue='{id}']").GetByRole(AriaRole.Button, new() { Name = "Edit" }).ClickAsync();
        var editor = page.Locator("#queue-editor");
        var edited = (await editor.InputValueAsync()).Replace("\"batch_size\": 1", "\"batch_size\": 2", StringComparison.Ordinal);
        await editor.FillAsync(edited);
        await page.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await page.GetByRole(AriaRole.Heading, new() { Name = "Create a queue" }).WaitForAsync();
        var stored = JsonDocument.Parse(await _server.Http.GetStringAsync($"/queues/{id}/")).RootElement;
        Assert.Equal(2, stored.GetProperty("queue").GetProperty("batch_size").GetInt32());

        await _server.Http.GetAsync($"/queues/{id}/disable/");
        foreach (var run in JsonDocument.Parse(await _server.Http.GetStringAsync($"/tasks/?id={id}")).RootElement.EnumerateArray())
            await _server.Http.GetAsync($"/tasks/{run.GetProperty("mesos_id").GetString()}/kill/");
    }

    [Fact]
    public async Task TaskPage_AnOlderSlowerAnswer_DoesNotEraseTheOutputOfTheRunNowFollowed()
    {
        // A waiting run's page asks once for its (empty) output; the answer is held back until the run has started and a
        // newer render follows its output. That older, emptier answer must not then wipe what is shown.
        var family = Families.New("dashrace");
        var first = await _server.PostTaskAsync(Tasks.Definition(family, "sleep 4", maxConcurrent: 1));
        await _server.WaitForStateAsync(first, state => state is "TASK_STAGING" or "TASK_STARTING" or "TASK_RUNNING");
        var second = await _server.PostTaskAsync(Tasks.Definition(family, "echo second-started; sleep 600", maxConcurrent: 1));
        Assert.Equal("WAITING_ON_OFFERS", (await _server.GetRunAsync(second)).GetProperty("mesos_state").GetString());

        var page = await NewPageAsync();
        var heldBack = new TaskCompletionSource();
        await page.RouteAsync(new System.Text.RegularExpressions.Regex("/tasks/" + System.Text.RegularExpressions.Regex.Escape(second) + "/logs/$"), async route =>
        {
            var response = await route.FetchAsync();   // asked while waiting: empty
            await _server.WaitForStateAsync(second, state => state == "TASK_RUNNING");
            await Assertions.Expect(page.Locator("#log")).ToContainTextAsync("second-started", new() { Timeout = 30000 });
            await route.FulfillAsync(new() { Response = response });
            heldBack.TrySetResult();
        });

        await page.GotoAsync(Url + "#/task/" + Uri.EscapeDataString(second));
        await heldBack.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await page.WaitForTimeoutAsync(500);   // the page has had the held-back answer
        Assert.Contains("second-started", await page.Locator("#log").TextContentAsync(), StringComparison.Ordinal);
        await _server.Http.GetAsync($"/tasks/{second}/kill/");
    }

    [Fact]
    public async Task KillFromTheTaskPage_AfterConfirmation_StateChangesLive()
    {
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("dashkill"), "echo started; sleep 600"));
        await _server.WaitForStateAsync(id, state => state == "TASK_RUNNING");
        var page = await NewPageAsync();
        string? dialogText = null;
        page.Dialog += async (_, dialog) =>
        {
            dialogText = dialog.Message;
            await dialog.AcceptAsync();
        };

        await page.GotoAsync(Url + "#/task/" + Uri.EscapeDataString(id));
        await Assertions.Expect(page.Locator("#log")).ToContainTextAsync("started", new() { Timeout = 15000 });
        await page.Locator("#kill").ClickAsync();

        try
        {
            await Assertions.Expect(page.Locator("main .state").First).ToHaveTextAsync("TASK_KILLED", new() { Timeout = 45000 });
        }
        catch (PlaywrightException e)
        {
            // Say where it stuck: the dialog, the kill request, the store or the engine.
            var run = await _server.GetRunAsync(id);
            throw new Xunit.Sdk.XunitException($"{e.Message}\ndialog: {dialogText ?? "(none)"}\nstored: {run.GetProperty("mesos_state")} {run.GetProperty("reason")}\n"
                + string.Join("\n", _server.Output.Split('\n').Where(line => line.Contains(id, StringComparison.Ordinal) || line.Contains("fail", StringComparison.Ordinal)).TakeLast(30)));
        }

        Assert.Contains("Kill", dialogText, StringComparison.Ordinal);
        Assert.Equal("TASK_KILLED", (await _server.GetRunAsync(id)).GetProperty("mesos_state").GetString());
    }

    [Fact]
    public async Task JobsPage_ShowsReplicas_AndScalesFromTheForm()
    {
        var id = Families.New("dashjob");
        await _server.CreateAsync(Jobs.Job(id, Jobs.Group("ui", 1)));
        var page = await NewPageAsync();
        await page.GotoAsync(Url + "#/jobs");
        var row = page.Locator($"tr[data-job='{id}']");
        await Assertions.Expect(row).ToContainTextAsync("1/1 running", new() { Timeout = 30000 });

        await row.GetByLabel($"Replicas of {id}-ui-test").FillAsync("2");
        await row.GetByRole(AriaRole.Button, new() { Name = "Scale" }).ClickAsync();

        await Assertions.Expect(row).ToContainTextAsync("2/2 running", new() { Timeout = 30000 });
        await BrowserFixture.ScreenshotAsync(page, "jobs");
        await _server.Http.DeleteAsync($"/job/{id}");
    }

    [Fact]
    public async Task Overview_OnAPhoneSizedScreen_FitsWithoutSideways_AndIsKeyboardNavigable()
    {
        var context = await browser.Browser.NewContextAsync(new() { ViewportSize = new() { Width = 375, Height = 740 } });
        var page = await context.NewPageAsync();
        await page.GotoAsync(Url);
        await page.GetByRole(AriaRole.Heading, new() { Name = "Overview" }).WaitForAsync();
        await Assertions.Expect(page.Locator("#live")).ToHaveTextAsync("live", new() { Timeout = 15000 });

        var overflow = await page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth > window.innerWidth");
        // From the top of the page: the skip link first, then the navigation.
        await page.EvaluateAsync("() => { document.body.tabIndex = -1; document.body.focus(); }");
        await page.Keyboard.PressAsync("Tab");
        var skip = await page.EvaluateAsync<string>("() => document.activeElement.textContent");
        await page.Keyboard.PressAsync("Tab");
        var focused = await page.EvaluateAsync<string>("() => document.activeElement.textContent");
        await BrowserFixture.ScreenshotAsync(page, "overview-phone");

        Assert.False(overflow);
        Assert.Equal("Skip to content", skip);
        Assert.Equal("Overview", focused);
        await context.DisposeAsync();
    }

    [Fact]
    public async Task QueueRow_ShowsEachStepsMedian_AndTheChartHasAxesAndALegend()
    {
        var id = Families.New("stepq");
        using (var created = await _server.Http.PostAsJsonAsync("/queues/", QueuesTests.CronQueue(id, "*/2 * * * * *", "sleep 1.5")))
            created.EnsureSuccessStatusCode();
        // Two runs of the queue through to the end: their step times are in the store.
        await Eventually.WaitUntilAsync(async () => JsonDocument.Parse(await _server.Http.GetStringAsync($"/tasks/?id={id}")).RootElement.EnumerateArray()
            .Count(r => r.GetProperty("mesos_state").GetString() == "TASK_FINISHED") >= 2, TimeSpan.FromSeconds(60));
        await _server.Http.GetAsync($"/queues/{id}/disable/");

        var steps = JsonDocument.Parse(await _server.Http.GetStringAsync($"/queues/{id}/")).RootElement.GetProperty("stats").GetProperty("steps");
        Assert.True(steps.GetProperty("sample").GetInt32() >= 2);
        // The engine's own start and end times measure the run; its start is noted a few milliseconds after the process
        // began (1.498 s was seen for a `sleep 1.5`).
        Assert.InRange(steps.GetProperty("run_seconds").GetDouble(), 1.4, 30);
        Assert.InRange(steps.GetProperty("launch_seconds").GetDouble(), 0.001, 30);
        Assert.InRange(steps.GetProperty("wait_seconds").GetDouble(), 0, 30);

        var page = await NewPageAsync();
        await page.GotoAsync(Url);
        var row = page.Locator($"tr[data-queue='{id}']");
        await Assertions.Expect(row.Locator("td.steps")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^wait [0-9.]+s · launch [0-9.]+s · run [0-9.]+s$"), new() { Timeout = 15000 });
        var chart = page.Locator("svg.chart");
        await Assertions.Expect(chart.Locator("text.legend").First).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^launches \([1-9][0-9]*\)$"));
        await Assertions.Expect(chart.Locator("text.axis", new() { HasTextString = "now" })).ToHaveCountAsync(1);
        await Assertions.Expect(chart.Locator("text.axis", new() { HasTextString = "-60 min" })).ToHaveCountAsync(1);
        await BrowserFixture.ScreenshotAsync(page, "overview-queue-steps");
    }

    [Fact]
    public async Task Assets_ShipWithTheServer_NoExternalReferences()
    {
        var html = await _server.Http.GetStringAsync("/");
        var script = await _server.Http.GetStringAsync("/dashboard/app.js");

        Assert.DoesNotMatch("(src|href)=\"https?://", html);
        Assert.DoesNotContain("http://", script.Replace("http://www.w3.org/2000/svg", string.Empty, StringComparison.Ordinal), StringComparison.Ordinal);
        var summary = JsonDocument.Parse(await _server.Http.GetStringAsync("/api/summary")).RootElement;
        Assert.True(summary.GetProperty("counts").TryGetProperty("TASK_FINISHED", out _));
    }

    private async Task<IPage> NewPageAsync()
    {
        var context = await browser.Browser.NewContextAsync(new() { ViewportSize = new() { Width = 1200, Height = 900 } });
        return await context.NewPageAsync();
    }
}
