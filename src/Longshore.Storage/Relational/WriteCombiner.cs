using System.Threading.Channels;
using Longshore.Core.Storage;

namespace Longshore.Storage.Relational;

/// <summary>
/// Combines writes of one kind that wait at the same moment into one store write: a few writers take turns, each taking
/// every write waiting (up to a limit) when it is free, so a lone write goes at once and a busy moment's writes share
/// one transaction, one fenced lease check and one commit. Each caller gets its own answer. A combined write that
/// fails is tried again one item at a time, so one item the store refuses fails alone; a stale term fails them all.
/// </summary>
/// <typeparam name="TItem">What one caller writes.</typeparam>
/// <typeparam name="TResult">What that caller is answered.</typeparam>
internal sealed class WriteCombiner<TItem, TResult>
{
    private readonly Func<long?, IReadOnlyList<TItem>, Task<TResult[]>> _writeAll;
    private readonly Func<TItem, string> _key;
    private readonly int _limit;
    private readonly Channel<Pending> _pending = Channel.CreateUnbounded<Pending>();
    private readonly Task[] _writers;

    /// <param name="writeAll">Writes the items in one transaction fenced by the term (none when null); one result per item, in order.</param>
    /// <param name="key">What an item changes: two items with the same key never share a write (the later waits for the next).</param>
    /// <param name="writers">Combined writes in flight at once.</param>
    /// <param name="limit">Items in one combined write at most.</param>
    public WriteCombiner(Func<long?, IReadOnlyList<TItem>, Task<TResult[]>> writeAll, Func<TItem, string> key, int writers, int limit)
    {
        _writeAll = writeAll;
        _key = key;
        _limit = limit;
        _writers = Enumerable.Range(0, writers).Select(_ => Task.Run(WriterAsync, CancellationToken.None)).ToArray();
    }

    /// <summary>Writes <paramref name="item"/> under this context's term (<see cref="Fencing.CurrentTerm"/>).</summary>
    /// <remarks>Like any write whose caller stops waiting, one cut off by <paramref name="cancellationToken"/> may still commit.</remarks>
    public async Task<TResult> WriteAsync(TItem item, CancellationToken cancellationToken)
    {
        var pending = new Pending(item, Fencing.CurrentTerm);
        ObjectDisposedException.ThrowIf(!_pending.Writer.TryWrite(pending), this);
        return await pending.Done.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Takes no more writes and waits (a while) for those taken.</summary>
    public async Task StopAsync()
    {
        _pending.Writer.TryComplete();
        await Task.WhenAll(_writers).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task WriterAsync()
    {
        var batch = new List<Pending>(_limit);
        var later = new List<Pending>();
        var keys = new HashSet<string>(StringComparer.Ordinal);
        while (await _pending.Reader.WaitToReadAsync())
        {
            batch.Clear();
            later.Clear();
            keys.Clear();
            while (batch.Count < _limit && _pending.Reader.TryRead(out var pending))
            {
                // One lease check speaks for one term, and one statement changes a row once: an item under another term,
                // or a second one for the same key, is written after this batch, on its own.
                if ((batch.Count == 0 || pending.Term == batch[0].Term) && keys.Add(_key(pending.Item)))
                    batch.Add(pending);
                else
                    later.Add(pending);
            }

            await WriteAllAsync(batch);
            foreach (var pending in later)
                await WriteAllAsync([pending]);
        }
    }

    private async Task WriteAllAsync(IReadOnlyList<Pending> batch)
    {
        if (batch.Count == 0)
            return;
        try
        {
            var results = await _writeAll(batch[0].Term, batch.Select(pending => pending.Item).ToList());
            for (var i = 0; i < batch.Count; i++)
                batch[i].Done.TrySetResult(results[i]);
        }
        catch (StaleTermException e)
        {
            foreach (var pending in batch)
                pending.Done.TrySetException(e);
        }
        catch (Exception) when (batch.Count > 1)
        {
            foreach (var pending in batch)
                await WriteAllAsync([pending]);
        }
        catch (Exception e)
        {
            batch[0].Done.TrySetException(e);
        }
    }

    private sealed record Pending(TItem Item, long? Term)
    {
        public TaskCompletionSource<TResult> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
