using System.Diagnostics;
using System.Text;
using Longshore.Core.Queues;
using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Queues;

public sealed class PayloadTests
{
    public static TheoryData<string> Payloads => new()
    {
        "plain",
        "with \"double\" and 'single' quotes",
        "a; touch /tmp/longshore-pwned; b",
        "$(touch /tmp/longshore-pwned) `touch /tmp/longshore-pwned`",
        "line one\nline two\n",
        "  spaced   words * ? [glob]  ",
        new string('x', 64 * 1024),
    };

    [Theory]
    [MemberData(nameof(Payloads))]
    public async Task ApplyThenRunInARealShell_PrintsThePayloadExactly_AndRunsNothingElse(string payload)
    {
        File.Delete("/tmp/longshore-pwned");
        var definition = Payload.Apply(new TaskDefinition { Id = "q", Cmd = "printf '%s' $HIPPO_DATA", Env = new() { ["COPY"] = "<$HIPPO_DATA>" } }, payload);

        var output = await ShellAsync(definition.Cmd!, definition.Env!);

        Assert.Equal(payload, output);
        Assert.False(File.Exists("/tmp/longshore-pwned"));
        Assert.Equal("<" + payload + ">", definition.Env!["COPY"]);
        Assert.Equal(payload, Encoding.UTF8.GetString(Convert.FromBase64String(definition.Env["HIPPO_DATA_BASE64"])));
    }

    [Theory]
    [InlineData("echo $HIPPO_DATA", "echo \"${HIPPO_DATA}\"")]
    [InlineData("echo ${HIPPO_DATA_BASE64} | base64 -d", "echo \"${HIPPO_DATA_BASE64}\" | base64 -d")]
    [InlineData("echo \"got: $HIPPO_DATA\"", "echo \"got: $HIPPO_DATA\"")]
    [InlineData("echo '$HIPPO_DATA'", "echo '$HIPPO_DATA'")]
    [InlineData("echo $HIPPO_DATAX \\$HIPPO_DATA", "echo $HIPPO_DATAX \\$HIPPO_DATA")]
    public void QuoteReferences_QuotesOnlyBareReferences(string cmd, string expected) => Assert.Equal(expected, Payload.QuoteReferences(cmd));

    private static async Task<string> ShellAsync(string cmd, Dictionary<string, string> env)
    {
        var info = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(cmd);
        foreach (var (name, value) in env)
            info.Environment[name] = value;
        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        return output;
    }
}
