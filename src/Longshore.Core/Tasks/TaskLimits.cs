namespace Longshore.Core.Tasks;

/// <summary>Server-side rules a definition is validated against, beyond its own field ranges.</summary>
public sealed record TaskLimits
{
    /// <summary>Host folders that volumes may mount (a path must be one of them or below one). Empty: none.</summary>
    public IReadOnlyList<string> AllowedHostPaths { get; init; } = [];

    /// <summary>What the engine the server runs on can express of a definition (placement constraints); null: anything valid.</summary>
    public IDefinitionRules? Engine { get; init; }

    public static TaskLimits Default { get; } = new();
}

/// <summary>
/// Capability of an engine that can express only part of what a valid definition may ask (a Kubernetes cluster places by
/// node labels): it names, at submit time, what it could not honour, so the request is refused instead of never running.
/// </summary>
public interface IDefinitionRules
{
    /// <summary>Every part of <paramref name="definition"/> (already valid on its own) that the engine cannot express, named as its field.</summary>
    IEnumerable<string> Check(TaskDefinition definition);
}
