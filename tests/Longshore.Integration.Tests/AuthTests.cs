using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests;

/// <summary>Access control on a server with a read-only and an operator token.</summary>
public sealed class AuthTests(BrowserFixture browser) : IAsyncLifetime, IClassFixture<BrowserFixture>
{
    private const string ReadToken = "read-token-0123456789abcdef";
    private const string OperatorToken = "operator-token-0123456789abcdef";
    private LongshoreServer _server = null!;
    private string _tokensFile = null!;

    public async Task InitializeAsync()
    {
        _tokensFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(_tokensFile, $"# test tokens\nread:viewer:{ReadToken}\noperator:ops:{OperatorToken}\n");
        _server = await LongshoreServer.StartAsync("--tokens-file", _tokensFile);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        File.Delete(_tokensFile);
    }

    public static TheoryData<string, string> Routes => new()
    {
        { "GET", "/tasks/" }, { "POST", "/tasks/" }, { "GET", "/tasks/x.1/" }, { "DELETE", "/tasks/x.1/" }, { "GET", "/tasks/x.1/kill/" },
        { "POST", "/tasks/x.1/kill/" }, { "GET", "/tasks/x.1/logs/" }, { "GET", "/metrics" }, { "GET", "/openapi/v1.json" },
        { "POST", "/job/new" }, { "GET", "/job/all" }, { "DELETE", "/job/all" }, { "GET", "/job/x" }, { "PUT", "/job/x" }, { "DELETE", "/job/x" },
        { "GET", "/no/such/route" },
    };

    [Theory]
    [MemberData(nameof(Routes))]
    public async Task EveryRoute_WithoutToken_Is401(string method, string path)
    {
        using var response = await SendAsync(method, path, token: null);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("Bearer", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WrongToken_Is401_HealthzStaysOpen()
    {
        using (var wrong = await SendAsync("GET", "/tasks/", "not-a-valid-token-at-all"))
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        using var health = await _server.Http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Theory]
    [InlineData("POST", "/tasks/")]
    [InlineData("GET", "/tasks/x.1/kill/")]
    [InlineData("DELETE", "/job/all")]
    [InlineData("POST", "/job/new")]
    public async Task ReadToken_DoingAWrite_Is403(string method, string path)
    {
        using var response = await SendAsync(method, path, ReadToken, Tasks.Definition(Families.New("auth"), "true"));
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("operator token", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadTokenReads_OperatorTokenRunsATask_AndTheChangeIsAudited()
    {
        using (var list = await SendAsync("GET", "/tasks/", ReadToken))
            Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        using var created = await SendAsync("POST", "/tasks/", OperatorToken, Tasks.Definition(Families.New("authok"), "echo fine"));
        Assert.Equal(HttpStatusCode.OK, created.StatusCode);
        var id = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("mesos_id").GetString()!;

        using var run = await SendAsync("GET", $"/tasks/{id}/", ReadToken);
        Assert.Equal(HttpStatusCode.OK, run.StatusCode);
        Assert.Contains("audit: ops (operator) POST /tasks/ -> 200", _server.Output, StringComparison.Ordinal);
        Assert.Contains("Access control on: 2 tokens", _server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_UsesTheTokenFromTheEnvironment_AndSaysWhenDenied()
    {
        var server = $"http://127.0.0.1:{_server.Port}";
        var denied = await CliProcess.RunAsync(["task", "ls", "--server", server]);
        var allowed = await CliProcess.RunAsync(["task", "ls", "--json", "--server", server], new Dictionary<string, string> { ["LONGSHORE_TOKEN"] = ReadToken });
        var forbidden = await CliProcess.RunAsync(["task", "run", "busybox", "--server", server, "--", "true"], new Dictionary<string, string> { ["LONGSHORE_TOKEN"] = ReadToken });

        Assert.Equal(6, denied.ExitCode);
        Assert.Contains("401", denied.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, allowed.ExitCode);
        Assert.Equal(JsonValueKind.Array, JsonDocument.Parse(allowed.Stdout).RootElement.ValueKind);
        Assert.Equal(6, forbidden.ExitCode);
    }

    [Fact]
    public async Task NoTokenOrSecret_AppearsInTheServerOutput()
    {
        var secret = "s3cr3t-" + Guid.NewGuid().ToString("N");
        using var created = await SendAsync("POST", "/tasks/", OperatorToken,
            Tasks.Definition(Families.New("secret"), "echo $SECRET > /dev/null", env: new Dictionary<string, string> { ["SECRET"] = secret }));
        var id = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("mesos_id").GetString()!;
        await _server.WaitForStateAsync(id, TestStates.IsTerminal, null, OperatorToken);
        await SendAsync("GET", "/tasks/", "wrong-" + secret);

        Assert.DoesNotContain(ReadToken, _server.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(OperatorToken, _server.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, _server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dashboard_AsksForTheToken_ThenShowsLiveData()
    {
        var page = await browser.Browser.NewPageAsync();
        await page.GotoAsync($"http://127.0.0.1:{_server.Port}/#/tasks");

        var dialog = page.GetByRole(Microsoft.Playwright.AriaRole.Dialog);
        await Microsoft.Playwright.Assertions.Expect(dialog).ToBeVisibleAsync();
        await page.GetByRole(Microsoft.Playwright.AriaRole.Textbox, new() { Name = "Token" }).FillAsync(ReadToken);
        await page.GetByRole(Microsoft.Playwright.AriaRole.Button, new() { Name = "Use token" }).ClickAsync();

        await page.GetByRole(Microsoft.Playwright.AriaRole.Heading, new() { Name = "Tasks" }).WaitForAsync();
        await Microsoft.Playwright.Assertions.Expect(page.Locator("#live")).ToHaveTextAsync("live", new() { Timeout = 15000 });
        await BrowserFixture.ScreenshotAsync(page, "tasks-with-token");
        Assert.DoesNotContain(ReadToken, _server.Output, StringComparison.Ordinal);
    }

    private async Task<HttpResponseMessage> SendAsync(string method, string path, string? token, object? body = null)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (token is not null)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null || method is "POST" or "PUT")
            request.Content = JsonContent.Create(body ?? new { });
        return await _server.Http.SendAsync(request);
    }
}
