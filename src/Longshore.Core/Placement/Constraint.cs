using System.Globalization;
using System.Text.RegularExpressions;

namespace Longshore.Core.Placement;

public enum ConstraintOperator
{
    Equal,
    Cluster,
    Like,
    Unlike,
    Unique,
    GroupBy,
    MaxPer,
    Unequal,
}

/// <summary>
/// One Marathon-style placement rule <c>[attribute, operator, value]</c> as the task definition carries it (validated by
/// <c>TaskDefinitionValidator</c>). <c>hostname</c> names the agent's host; any other name an agent attribute.
/// </summary>
/// <remarks>
/// EQUAL / CLUSTER value: the attribute equals the value. CLUSTER without a value: every run of the family on the same
/// value as the first one placed. LIKE / UNLIKE: the whole value matches / does not match the regular expression.
/// UNIQUE: no other run of the family on the value. MAX_PER n: fewer than n runs of the family on the value.
/// UNEQUAL (Hippo): the attribute differs from the value. An agent without the attribute passes only UNLIKE and UNEQUAL.
/// GROUP_BY spreads runs over the values (its optional count is not needed to do so and is ignored).
/// </remarks>
public sealed class Constraint
{
    private readonly Regex? _regex;
    private readonly int _maxPer;

    private Constraint(string attribute, ConstraintOperator op, string? value)
    {
        Attribute = attribute;
        Operator = op;
        Value = value;
        if (op is ConstraintOperator.Like or ConstraintOperator.Unlike)
            _regex = new Regex("^(?:" + value + ")$", RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(50));
        if (op == ConstraintOperator.MaxPer)
            _maxPer = int.Parse(value!, NumberStyles.None, CultureInfo.InvariantCulture);
    }

    public string Attribute { get; }

    public ConstraintOperator Operator { get; }

    public string? Value { get; }

    public static Constraint[] Parse(List<List<string>>? constraints) =>
        constraints is null ? [] : constraints.Select(c => new Constraint(c[0], ParseOperator(c[1]), c.Count > 2 ? c[2] : null)).ToArray();

    private static ConstraintOperator ParseOperator(string name) => name switch
    {
        "EQUAL" => ConstraintOperator.Equal,
        "CLUSTER" => ConstraintOperator.Cluster,
        "LIKE" => ConstraintOperator.Like,
        "UNLIKE" => ConstraintOperator.Unlike,
        "UNIQUE" => ConstraintOperator.Unique,
        "GROUP_BY" => ConstraintOperator.GroupBy,
        "MAX_PER" => ConstraintOperator.MaxPer,
        "UNEQUAL" => ConstraintOperator.Unequal,
        _ => throw new FormatException($"unknown constraint operator '{name}'"),
    };

    internal bool Accepts(string familyId, AgentOffer agent, PlacementCounts counts)
    {
        var actual = OfferMatcher.AttributeOf(agent.Hostname, agent.Attributes, Attribute);
        if (actual is null)
            return Operator is ConstraintOperator.Unlike or ConstraintOperator.Unequal;
        return Operator switch
        {
            ConstraintOperator.Equal => actual == Value,
            ConstraintOperator.Cluster => actual == (Value ?? counts.FirstValue(familyId, Attribute) ?? actual),
            ConstraintOperator.Like => _regex!.IsMatch(actual),
            ConstraintOperator.Unlike => !_regex!.IsMatch(actual),
            ConstraintOperator.Unique => counts.Count(familyId, Attribute, actual) == 0,
            ConstraintOperator.MaxPer => counts.Count(familyId, Attribute, actual) < _maxPer,
            ConstraintOperator.Unequal => actual != Value,
            _ => true,
        };
    }
}
