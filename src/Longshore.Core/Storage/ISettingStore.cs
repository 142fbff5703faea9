namespace Longshore.Core.Storage;

/// <summary>
/// Small named values that belong to the deployment rather than to one instance, kept in the shared store so that
/// whichever instance leads sees the same ones (the Mesos framework id is one). Writes are fenced like any other.
/// </summary>
public interface ISettingStore
{
    /// <summary>The value stored under <paramref name="key"/>, or null.</summary>
    Task<string?> GetSettingAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Stores <paramref name="value"/> under <paramref name="key"/>, replacing any; null removes it.</summary>
    Task SetSettingAsync(string key, string? value, CancellationToken cancellationToken = default);
}
