namespace Longshore.Core.Tasks;

/// <summary>Server-side rules a definition is validated against, beyond its own field ranges.</summary>
public sealed record TaskLimits
{
    /// <summary>Host folders that volumes may mount (a path must be one of them or below one). Empty: none.</summary>
    public IReadOnlyList<string> AllowedHostPaths { get; init; } = [];

    public static TaskLimits Default { get; } = new();
}
