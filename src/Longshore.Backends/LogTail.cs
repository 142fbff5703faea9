using System.Text;
using Docker.DotNet;
using Longshore.Core.Execution;

namespace Longshore.Backends;

/// <summary>Reads a run's output keeping only the last <c>cap</c> bytes of each of stdout and stderr.</summary>
internal static class LogTail
{
    /// <summary>A Docker multiplexed stream: stdout and stderr apart.</summary>
    public static async Task<TaskLogs> ReadAsync(MultiplexedStream stream, int cap, CancellationToken cancellationToken)
    {
        using var stdout = new Tail(cap);
        using var stderr = new Tail(cap);
        var buffer = new byte[81920];
        while (true)
        {
            var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, cancellationToken);
            if (read.EOF)
                break;
            (read.Target == MultiplexedStream.TargetStream.StandardError ? stderr : stdout).Append(buffer.AsSpan(0, read.Count));
        }

        return new TaskLogs(stdout.ToText(), stderr.ToText(), stdout.Dropped || stderr.Dropped);
    }

    /// <summary>One interleaved stream (a Kubernetes container log): all of it is kept as stdout.</summary>
    public static async Task<TaskLogs> ReadAsync(Stream stream, int cap, CancellationToken cancellationToken)
    {
        using var output = new Tail(cap);
        var buffer = new byte[81920];
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
            output.Append(buffer.AsSpan(0, read));
        return new TaskLogs(output.ToText(), string.Empty, output.Dropped);
    }

    private sealed class Tail(int cap) : IDisposable
    {
        private readonly MemoryStream _bytes = new();

        public bool Dropped { get; private set; }

        public void Append(ReadOnlySpan<byte> data)
        {
            _bytes.Write(data);
            if (_bytes.Length <= 2L * cap)
                return;
            // Compact only when twice the cap is held, so a chatty container costs amortized O(1) per byte.
            var keep = _bytes.GetBuffer().AsSpan((int)_bytes.Length - cap, cap).ToArray();
            _bytes.SetLength(0);
            _bytes.Write(keep);
            Dropped = true;
        }

        public string ToText()
        {
            var length = (int)_bytes.Length;
            var start = Math.Max(0, length - cap);
            Dropped |= start > 0;
            return Encoding.UTF8.GetString(_bytes.GetBuffer(), start, length - start);
        }

        public void Dispose() => _bytes.Dispose();
    }
}
