using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Tasks;

public sealed class TaskRunTests
{
    private static readonly DateTimeOffset Now = TestClock.Now();
    private static readonly Guid Uuid = Guid.Parse("3FF3991C-E0E3-49A3-A522-7A03386FFDA2");

    [Fact]
    public void NewMesosId_FamilyAndUuid_IsFamilyDotLowercaseHyphenatedUuid() =>
        Assert.Equal("web.api.3ff3991c-e0e3-49a3-a522-7a03386ffda2", TaskRun.NewMesosId("web.api", Uuid));

    [Fact]
    public void CreateFirst_Definition_StartsWaitingWithTheDefinitionsRetryBudgets()
    {
        var definition = new TaskDefinition { Id = "fam", TaskRetries = 4, SystemRetries = 7 };

        var run = TaskRun.CreateFirst(definition, Uuid, Now);

        Assert.Equal("fam.3ff3991c-e0e3-49a3-a522-7a03386ffda2", run.MesosId);
        Assert.Equal("fam", run.FamilyId);
        Assert.Equal(1, run.Attempt);
        Assert.Equal(TaskState.WaitingOnOffers, run.State);
        Assert.Equal(4, run.TaskRetriesLeft);
        Assert.Equal(7, run.SystemRetriesLeft);
        Assert.Equal(Now, run.NotBefore);
        Assert.Equal(Now, run.CreatedAt);
        Assert.Null(run.RetryOf);
        Assert.Same(definition, run.Definition);
    }

    [Fact]
    public void CreateFirst_DefinitionWithoutId_ThrowsArgumentException() =>
        Assert.Throws<ArgumentException>("definition", () => TaskRun.CreateFirst(new TaskDefinition(), Uuid, Now));
}
