using Longshore.Sources.S3;

namespace Longshore.Core.Tests.Queues;

public sealed class S3WatermarkTests
{
    private static readonly Dictionary<string, string> Empty = [];

    [Fact]
    public void FirstPoll_TakesEverything_InLastModifiedThenKeyOrder()
    {
        var (taken, state) = S3Watermark.Select([new("b", 2000), new("a", 2000), new("c", 1000)], Empty, null, 100);

        Assert.Equal(["c", "a", "b"], taken.Select(o => o.Key));
        Assert.Equal("2000", state[S3Watermark.AtKey]);
        Assert.Equal("[\"a\",\"b\"]", state[S3Watermark.KeysKey]);
    }

    [Fact]
    public void ObjectsSharingTheWatermarksInstant_AreNeitherSkippedNorRepeated()
    {
        var (_, state) = S3Watermark.Select([new("a", 5000), new("b", 5000)], Empty, null, 100);

        // "c" arrived later with the same last-modified second as the watermark: it is new; a and b are not.
        var (taken, next) = S3Watermark.Select([new("a", 5000), new("b", 5000), new("c", 5000), new("old", 4000)], state, null, 100);

        Assert.Equal(["c"], taken.Select(o => o.Key));
        Assert.Equal("[\"a\",\"b\",\"c\"]", next[S3Watermark.KeysKey]);
        Assert.Empty(S3Watermark.Select([new("a", 5000), new("b", 5000), new("c", 5000)], next, null, 100).Taken);
    }

    [Fact]
    public void AnObjectOverwritten_IsNewAgain_ItsKeyWithALaterTime()
    {
        var (_, state) = S3Watermark.Select([new("a", 1000)], Empty, null, 100);

        var (taken, next) = S3Watermark.Select([new("a", 3000)], state, null, 100);

        Assert.Equal([new S3Listed("a", 3000)], taken);
        Assert.Equal("3000", next[S3Watermark.AtKey]);
    }

    [Fact]
    public void Max_CutsThePollShort_AndTheNextPollContinuesWithoutGapOrRepeat()
    {
        S3Listed[] bucket = [new("a", 1000), new("b", 2000), new("c", 2000), new("d", 2000), new("e", 3000)];
        var state = (IReadOnlyDictionary<string, string>)Empty;
        var all = new List<string>();
        for (var poll = 0; poll < 5; poll++)
        {
            var (taken, next) = S3Watermark.Select(bucket, state, null, 2);
            Assert.True(taken.Count <= 2);
            all.AddRange(taken.Select(o => o.Key));
            state = next;
        }

        Assert.Equal(["a", "b", "c", "d", "e"], all);
    }

    [Fact]
    public void Earliest_SkipsObjectsModifiedBeforeIt_AndNothingNew_KeepsTheState()
    {
        var (taken, state) = S3Watermark.Select([new("old", 999), new("edge", 1000), new("new", 1001)], Empty, 1000, 100);

        Assert.Equal(["edge", "new"], taken.Select(o => o.Key));
        var (none, same) = S3Watermark.Select([new("old", 999), new("edge", 1000), new("new", 1001)], state, 1000, 100);
        Assert.Empty(none);
        Assert.Same(state, same);
    }
}
