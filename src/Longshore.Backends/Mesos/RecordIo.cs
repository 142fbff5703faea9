using System.Globalization;
using System.Text;

namespace Longshore.Backends.Mesos;

/// <summary>
/// The RecordIO framing of the Mesos event stream: <c>&lt;decimal byte length&gt;\n&lt;record bytes&gt;</c>, repeated.
/// Records may be split across reads or share one; the reader does not rely on one record per HTTP chunk.
/// </summary>
public sealed class RecordIoReader(Stream stream, int maxRecordBytes = 64 * 1024 * 1024)
{
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    /// <summary>The next record, or null at a clean end of stream (between records).</summary>
    /// <exception cref="InvalidDataException">The stream ended inside a record or the length prefix is malformed.</exception>
    public async Task<byte[]?> ReadAsync(CancellationToken cancellationToken = default)
    {
        long length = 0;
        var digits = 0;
        while (true)
        {
            if (_start == _end && !await FillAsync(cancellationToken))
            {
                if (digits == 0)
                    return null;
                throw new InvalidDataException("the stream ended inside a RecordIO length prefix");
            }

            var b = _buffer[_start++];
            if (b == (byte)'\n')
            {
                if (digits == 0)
                    throw new InvalidDataException("empty RecordIO length prefix");
                break;
            }

            if (b is < (byte)'0' or > (byte)'9' || ++digits > 10)
                throw new InvalidDataException($"malformed RecordIO length prefix (byte 0x{b:x2})");
            length = (length * 10) + (b - '0');
            if (length > maxRecordBytes)
                throw new InvalidDataException($"RecordIO record of {length} bytes exceeds the limit of {maxRecordBytes}");
        }

        var record = new byte[length];
        var copied = 0;
        while (copied < length)
        {
            if (_start == _end && !await FillAsync(cancellationToken))
                throw new InvalidDataException($"the stream ended inside a RecordIO record ({copied} of {length} bytes)");
            var n = Math.Min(_end - _start, (int)length - copied);
            Buffer.BlockCopy(_buffer, _start, record, copied, n);
            _start += n;
            copied += n;
        }

        return record;
    }

    private async Task<bool> FillAsync(CancellationToken cancellationToken)
    {
        _start = 0;
        _end = await stream.ReadAsync(_buffer, cancellationToken);
        return _end > 0;
    }

    /// <summary>One record framed for the wire (what a master writes as one HTTP chunk).</summary>
    public static byte[] Frame(ReadOnlySpan<byte> record)
    {
        var prefix = Encoding.ASCII.GetBytes(record.Length.ToString(CultureInfo.InvariantCulture) + "\n");
        var framed = new byte[prefix.Length + record.Length];
        prefix.CopyTo(framed, 0);
        record.CopyTo(framed.AsSpan(prefix.Length));
        return framed;
    }
}
