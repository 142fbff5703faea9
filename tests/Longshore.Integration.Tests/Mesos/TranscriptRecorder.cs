using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>
/// Records exchanges with a real Mesos master in the transcripts' format (<c>NN-name.jsonl</c> entries: note, request,
/// response, chunk, record, stream_end; and <c>NN-name.STREAM.raw</c>, the bytes of each SUBSCRIBE connection). Raw
/// sockets, so every byte of a head is what the master sent. Authorization values are written as <c>&lt;right&gt;</c> or
/// <c>&lt;wrong&gt;</c>, never as the secret.
/// </summary>
public sealed class TranscriptRecorder : IAsyncDisposable
{
    private readonly string _folder;
    private readonly string _scenario;
    private readonly StreamWriter _jsonl;
    private readonly DateTimeOffset _start = TimeProvider.System.GetUtcNow();
    private readonly Lock _gate = new();
    private readonly List<Task> _readers = [];
    private readonly string? _rightAuthorization;
    private int _seq;

    public TranscriptRecorder(string folder, string scenario, string? rightAuthorization)
    {
        _folder = folder;
        _scenario = scenario;
        _rightAuthorization = rightAuthorization;
        _jsonl = new StreamWriter(Path.Combine(folder, scenario + ".jsonl"), append: false, new UTF8Encoding(false)) { NewLine = "\n" };
    }

    public void Note(string text) => Write(new JsonObject { ["kind"] = "note", ["text"] = text });

    /// <summary>One request with a Content-Length answer; returns status and body.</summary>
    public async Task<(int Status, string Head, string Body)> SendAsync(Uri master, string label, string method, string path, string? body,
        IEnumerable<(string Name, string Value)>? headers = null, string? stream = null)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(master.Host, master.Port);
        var network = client.GetStream();
        await WriteRequestAsync(network, master, label, method, path, body, headers, stream);
        var (status, head, names) = await ReadHeadAsync(network);
        var length = names.FirstOrDefault(h => h.Name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)).Value is { } l
            ? int.Parse(l, CultureInfo.InvariantCulture)
            : 0;
        var bytes = new byte[length];
        await network.ReadExactlyAsync(bytes);
        var text = Encoding.UTF8.GetString(bytes);
        var entry = Response(label, stream, status, head, names);
        entry["framing"] = "content-length";
        entry["body"] = text;
        entry["body_len"] = length;
        Write(entry);
        return (status, head, text);
    }

    /// <summary>A SUBSCRIBE: records the head, then every chunk and record in the background until the stream ends.</summary>
    public async Task<RecordedStream> SubscribeAsync(Uri master, string stream, string body, IEnumerable<(string Name, string Value)>? headers = null)
    {
        var client = new TcpClient();
        await client.ConnectAsync(master.Host, master.Port);
        var network = client.GetStream();
        await WriteRequestAsync(network, master, stream, "POST", "/api/v1/scheduler", body, headers, stream);
        var raw = new FileStream(Path.Combine(_folder, $"{_scenario}.{stream}.raw"), FileMode.Create);
        var tee = new TeeReader(network, raw);
        var (status, head, names) = await ReadHeadAsync(tee);
        var entry = Response(stream, stream, status, head, names);
        var recorded = new RecordedStream(client, names.FirstOrDefault(h => h.Name == "Mesos-Stream-Id").Value, status);
        if (!names.Any(h => h.Name == "Transfer-Encoding" && h.Value == "chunked"))
        {
            var length = int.Parse(names.First(h => h.Name == "Content-Length").Value, CultureInfo.InvariantCulture);
            var bytes = new byte[length];
            await tee.ReadExactlyAsync(bytes);
            entry["framing"] = "content-length";
            entry["body"] = Encoding.UTF8.GetString(bytes);
            entry["body_len"] = length;
            Write(entry);
            await raw.DisposeAsync();
            client.Dispose();
            recorded.Ended.TrySetResult("not a stream");
            return recorded;
        }

        entry["streaming"] = true;
        entry["framing"] = "chunked";
        Write(entry);
        lock (_gate)
            _readers.Add(Task.Run(() => ReadChunksAsync(tee, raw, stream, recorded)));
        return recorded;
    }

    private async Task ReadChunksAsync(TeeReader tee, FileStream raw, string stream, RecordedStream recorded)
    {
        var index = 0;
        string how;
        try
        {
            while (true)
            {
                var sizeLine = await tee.ReadLineAsync();
                if (sizeLine is null)
                {
                    how = "connection closed without a terminating chunk";
                    break;
                }

                var size = int.Parse(sizeLine, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (size == 0)
                {
                    await tee.ReadLineAsync();
                    how = "server sent terminating 0-length chunk (\"0\\r\\n\\r\\n\")";
                    break;
                }

                var data = new byte[size + 2];
                await tee.ReadExactlyAsync(data);
                index++;
                var text = Encoding.UTF8.GetString(data, 0, size);
                Write(new JsonObject
                {
                    ["kind"] = "chunk", ["stream"] = stream, ["index"] = index, ["size_line"] = sizeLine, ["len"] = size, ["data"] = text,
                    ["crlf_ok"] = data[size] == '\r' && data[size + 1] == '\n',
                });
                var newline = text.IndexOf('\n', StringComparison.Ordinal);
                var json = text[(newline + 1)..];
                var type = JsonDocument.Parse(json).RootElement.GetProperty("type").GetString();
                Write(new JsonObject
                {
                    ["kind"] = "record", ["stream"] = stream, ["index"] = index, ["type"] = type, ["prefix"] = text[..newline], ["json"] = json,
                    ["chunks"] = new JsonArray(index), ["one_record_per_chunk"] = int.Parse(text[..newline], CultureInfo.InvariantCulture) == Encoding.UTF8.GetByteCount(json),
                });
                recorded.Records.Writer.TryWrite(json);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
            how = recorded.ClosedByUs ? "closed by the recorder" : "connection reset: " + e.Message;
        }

        Write(new JsonObject { ["kind"] = "stream_end", ["stream"] = stream, ["how"] = how });
        recorded.Records.Writer.TryComplete();
        recorded.Ended.TrySetResult(how);
        await raw.DisposeAsync();
    }

    private async Task WriteRequestAsync(NetworkStream network, Uri master, string label, string method, string path, string? body,
        IEnumerable<(string Name, string Value)>? headers, string? stream)
    {
        var bytes = Encoding.UTF8.GetBytes(body ?? "");
        List<(string Name, string Value)> all = [("Host", master.Authority), .. headers ?? []];
        if (body is not null)
            all.Add(("Content-Length", bytes.Length.ToString(CultureInfo.InvariantCulture)));
        var text = new StringBuilder($"{method} {path} HTTP/1.1\r\n");
        foreach (var (name, value) in all)
            text.Append(CultureInfo.InvariantCulture, $"{name}: {value}\r\n");
        text.Append("\r\n");
        var entry = new JsonObject
        {
            ["kind"] = "request", ["label"] = label, ["target"] = master.Authority, ["method"] = method, ["path"] = path,
            ["headers"] = new JsonArray([.. all.Select(h => (JsonNode)new JsonArray(h.Name, Redact(h.Name, h.Value)))]),
        };
        if (stream is not null)
            entry["stream"] = stream;
        if (body is not null)
            entry["body"] = body;
        Write(entry);
        await network.WriteAsync(Encoding.ASCII.GetBytes(text.ToString()).Concat(bytes).ToArray());
    }

    private string Redact(string name, string value) =>
        name.Equals("Authorization", StringComparison.OrdinalIgnoreCase) ? (value == _rightAuthorization ? "<right>" : "<wrong>") : value;

    private static async Task<(int Status, string Head, List<(string Name, string Value)> Headers)> ReadHeadAsync(Stream network)
    {
        var head = new StringBuilder();
        var names = new List<(string, string)>();
        var reader = network as TeeReader ?? new TeeReader(network, null);
        while (await reader.ReadLineAsync() is { Length: > 0 } line)
        {
            head.Append(line).Append("\r\n");
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0)
                names.Add((line[..colon], line[(colon + 1)..].Trim()));
        }

        head.Append("\r\n");
        var status = int.Parse(head.ToString().Split(' ')[1], CultureInfo.InvariantCulture);
        return (status, head.ToString(), names);
    }

    private static JsonObject Response(string label, string? stream, int status, string head, List<(string Name, string Value)> headers)
    {
        var statusLine = head[..head.IndexOf("\r\n", StringComparison.Ordinal)];
        var entry = new JsonObject { ["kind"] = "response", ["label"] = label };
        if (stream is not null)
            entry["stream"] = stream;
        entry["status"] = status;
        entry["reason"] = statusLine[(statusLine.IndexOf(' ', statusLine.IndexOf(' ', StringComparison.Ordinal) + 1) + 1)..];
        entry["status_line"] = statusLine;
        entry["headers"] = new JsonArray([.. headers.Select(h => (JsonNode)new JsonArray(h.Name, h.Value))]);
        entry["raw_head"] = head;
        return entry;
    }

    private void Write(JsonObject entry)
    {
        lock (_gate)
        {
            var now = TimeProvider.System.GetUtcNow();
            var ordered = new JsonObject
            {
                ["seq"] = ++_seq,
                ["t"] = Math.Round((now - _start).TotalSeconds, 4),
                ["wall"] = now.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture),
            };
            foreach (var (name, value) in entry.ToArray())
            {
                entry.Remove(name);
                ordered[name] = value;
            }

            _jsonl.WriteLine(ordered.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            _jsonl.Flush();
        }
    }

    public async ValueTask DisposeAsync()
    {
        Task[] readers;
        lock (_gate)
            readers = [.. _readers];
        await Task.WhenAll(readers).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _jsonl.DisposeAsync();
    }

    /// <summary>An open SUBSCRIBE connection being recorded.</summary>
    public sealed class RecordedStream(TcpClient client, string? streamId, int status)
    {
        public string? StreamId { get; } = streamId;

        public int Status { get; } = status;

        public System.Threading.Channels.Channel<string> Records { get; } = System.Threading.Channels.Channel.CreateUnbounded<string>();

        public TaskCompletionSource<string> Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool ClosedByUs { get; private set; }

        /// <summary>The next record of the given type (others are skipped), within <paramref name="timeout"/>.</summary>
        public async Task<JsonElement> NextAsync(string type, TimeSpan timeout)
        {
            using var cancel = new CancellationTokenSource(timeout);
            await foreach (var json in Records.Reader.ReadAllAsync(cancel.Token))
            {
                var record = JsonDocument.Parse(json).RootElement.Clone();
                if (record.GetProperty("type").GetString() == type)
                    return record;
            }

            throw new InvalidOperationException($"the stream ended before a {type} record");
        }

        public void Close()
        {
            ClosedByUs = true;
            client.Dispose();
        }
    }

    /// <summary>Reads lines and exact byte counts off the network, copying every byte read to the raw file.</summary>
    private sealed class TeeReader(Stream inner, Stream? copy) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public async Task<string?> ReadLineAsync()
        {
            var line = new List<byte>();
            var one = new byte[1];
            while (true)
            {
                if (await ReadAsync(one) == 0)
                    return line.Count == 0 ? null : Encoding.ASCII.GetString([.. line]);
                if (one[0] == '\n' && line.Count > 0 && line[^1] == '\r')
                    return Encoding.ASCII.GetString([.. line], 0, line.Count - 1);
                line.Add(one[0]);
            }
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            if (copy is not null && read > 0)
            {
                await copy.WriteAsync(buffer[..read], cancellationToken);
                await copy.FlushAsync(cancellationToken);
            }

            return read;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
