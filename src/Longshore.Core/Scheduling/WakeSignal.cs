using System.Threading.Channels;

namespace Longshore.Core.Scheduling;

/// <summary>
/// Lets a background loop sleep until either its interval passes or someone has new work for it. Signals while the
/// loop is busy are folded into one, so a burst of nudges costs one extra pass.
/// </summary>
public sealed class WakeSignal(TimeProvider time)
{
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    public void Nudge() => _wake.Writer.TryWrite(true);

    /// <summary>Returns after <paramref name="timeout"/> or at the first nudge; throws only when <paramref name="cancellationToken"/> fires.</summary>
    public async Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var interval = new CancellationTokenSource(timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(interval.Token, cancellationToken);
        try
        {
            await _wake.Reader.WaitToReadAsync(linked.Token);
            _wake.Reader.TryRead(out _);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
        }
    }
}
