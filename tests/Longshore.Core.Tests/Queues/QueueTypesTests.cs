using System.Text.Json;
using Longshore.Core.Queues;

namespace Longshore.Core.Tests.Queues;

public sealed class QueueTypesTests
{
    private static readonly QueueType Redis = new("redis", "redis", "Redis list",
    [
        new QueueInput("host", "Host"),
        new QueueInput("port", "Port", "6379", Required: false, Number: true),
        new QueueInput("db", "Database", "0", Required: false, Number: true),
        new QueueInput("name", "List key"),
        new QueueInput("password", "Password", Required: false, Secret: true),
        new QueueInput("since", "Start", "", Required: false),
    ]);

    private static QueueBlock Block(string settings) =>
        new() { Type = "redis", Settings = new() { ["redis"] = JsonDocument.Parse(settings).RootElement.Clone() } };

    [Fact]
    public void SettingsOf_OmittedEmptyOrNullInputs_TakeTheirDefault_GivenOnesStay_NumbersAsText()
    {
        var settings = Redis.SettingsOf(Block("""{"host":"h","port":"","db":null,"name":"q","extra":7}"""));

        Assert.Equal(new Dictionary<string, string> { ["host"] = "h", ["port"] = "6379", ["db"] = "0", ["name"] = "q", ["extra"] = "7" }, settings);
        Assert.Equal("6380", Redis.SettingsOf(Block("""{"port":6380}"""))["port"]);
        Assert.Equal("6380", Redis.SettingsOf(Block("""{"port":"6380"}"""))["port"]);
        Assert.Equal(new Dictionary<string, string> { ["port"] = "6379", ["db"] = "0" }, Redis.SettingsOf(new QueueBlock { Type = "redis" }));
    }

    [Fact]
    public void Inputs_HaveHipposKind_AndOnlyThoseWithoutDefaultAreNeeded()
    {
        Assert.Equal(["text", "number", "number", "text", "password", "text"], Redis.Inputs.Select(i => i.Input));
        Assert.Equal(["host", "name"], Redis.Inputs.Where(i => i.Needed).Select(i => i.Name));
    }
}
