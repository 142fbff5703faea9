using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Longshore.Core.Queues;

/// <summary>
/// Keeps a queue's secret settings (the inputs its source marks secret) encrypted at rest with AES-256-GCM: stored as
/// <c>enc:v1:&lt;base64 nonce|ciphertext|tag&gt;</c>, decrypted only where a source needs them. A setting that is a
/// <see cref="SecretReferences">reference</see> (<c>${env:…}</c>, <c>${file:…}</c>) holds no secret: it is kept and
/// shown as written, and resolved where a source needs it.
/// </summary>
public sealed class QueueSecrets(byte[] key, IEnumerable<IQueueSource> sources, SecretReferences? references = null)
{
    private const string Prefix = "enc:v1:";
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private readonly Dictionary<string, IQueueSource> _sources = sources.ToDictionary(s => s.Type.Type, StringComparer.Ordinal);

    public static byte[] NewKey() => RandomNumberGenerator.GetBytes(32);

    private readonly SecretReferences _references = references ?? SecretReferences.None;

    public QueueBlock Protect(QueueBlock block) =>
        Transform(block, (_, value) => value.StartsWith(Prefix, StringComparison.Ordinal) || SecretReferences.IsReference(value) ? value : Encrypt(value));

    /// <summary>The block with every secret decrypted and references left as written (to merge an update into).</summary>
    public QueueBlock Unseal(QueueBlock block) =>
        Transform(block, (_, value) => value.StartsWith(Prefix, StringComparison.Ordinal) ? Decrypt(value) : value);

    /// <summary>The block with every secret decrypted and every reference resolved.</summary>
    /// <exception cref="SecretReferenceException">A reference breaks a rule or points at nothing.</exception>
    public QueueBlock Reveal(QueueBlock block) =>
        Transform(block, (field, value) => value.StartsWith(Prefix, StringComparison.Ordinal) ? Decrypt(value) : _references.Resolve(field, value));

    /// <inheritdoc cref="Reveal(QueueBlock)"/>
    public StoredQueue Reveal(StoredQueue queue) => queue with { Block = Reveal(queue.Block) };

    /// <summary>Errors of the block's secret references (naming each setting), or none.</summary>
    public IReadOnlyList<string> CheckReferences(QueueBlock block)
    {
        var errors = new List<string>();
        Transform(block, (field, value) =>
        {
            try
            {
                _references.Resolve(field, value);
            }
            catch (SecretReferenceException e)
            {
                errors.Add(e.Message);
            }

            return value;
        });
        return errors;
    }

    public string Encrypt(string plain)
    {
        var nonce = RandomNumberGenerator.GetBytes(NonceSize);
        var plainBytes = Encoding.UTF8.GetBytes(plain);
        var sealedBytes = new byte[NonceSize + plainBytes.Length + TagSize];
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(nonce, plainBytes, sealedBytes.AsSpan(NonceSize, plainBytes.Length), sealedBytes.AsSpan(NonceSize + plainBytes.Length));
        nonce.CopyTo(sealedBytes, 0);
        return Prefix + Convert.ToBase64String(sealedBytes);
    }

    /// <summary>Throws <see cref="CryptographicException"/> when the value was sealed with another key or altered.</summary>
    public string Decrypt(string stored)
    {
        var sealedBytes = Convert.FromBase64String(stored[Prefix.Length..]);
        var plain = new byte[sealedBytes.Length - NonceSize - TagSize];
        using var aes = new AesGcm(key, TagSize);
        aes.Decrypt(sealedBytes.AsSpan(0, NonceSize), sealedBytes.AsSpan(NonceSize, plain.Length), sealedBytes.AsSpan(NonceSize + plain.Length), plain);
        return Encoding.UTF8.GetString(plain);
    }

    private QueueBlock Transform(QueueBlock block, Func<string, string, string> change)
    {
        if (block.Settings is null || !_sources.TryGetValue(block.Type ?? string.Empty, out var source)
            || !block.Settings.TryGetValue(source.Type.Namespace, out var element) || element.ValueKind != JsonValueKind.Object)
            return block;
        var secret = source.Type.Inputs.Where(i => i.Secret).Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var settings = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
        {
            settings[property.Name] = secret.Contains(property.Name) && property.Value.ValueKind == JsonValueKind.String && property.Value.GetString() is { Length: > 0 } value
                ? JsonSerializer.SerializeToElement(change($"queue.{source.Type.Namespace}.{property.Name}", value))
                : property.Value.Clone();
        }

        return block with { Settings = new Dictionary<string, JsonElement>(block.Settings, StringComparer.Ordinal) { [source.Type.Namespace] = JsonSerializer.SerializeToElement(settings) } };
    }
}
