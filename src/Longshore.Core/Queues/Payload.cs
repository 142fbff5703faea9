using System.Text;
using Longshore.Core.Tasks;

namespace Longshore.Core.Queues;

/// <summary>
/// Hands a message's payload to a task template: as env <c>HIPPO_DATA</c> and <c>HIPPO_DATA_BASE64</c>, substituted
/// in env values, and referenced from <c>cmd</c> so the shell expands it from the environment as one word. The
/// payload's text is never spliced into the command line, so nothing in it (quotes, <c>;</c>, <c>$(…)</c>, newlines)
/// can run as shell code.
/// </summary>
public static class Payload
{
    public const string Variable = "HIPPO_DATA";
    public const string Base64Variable = "HIPPO_DATA_BASE64";

    public static TaskDefinition Apply(TaskDefinition template, string payload)
    {
        var base64 = Convert.ToBase64String(Encoding.UTF8.GetBytes(payload));
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in template.Env ?? [])
            env[name] = value.Replace("$" + Base64Variable, base64, StringComparison.Ordinal).Replace("$" + Variable, payload, StringComparison.Ordinal);
        env[Variable] = payload;
        env[Base64Variable] = base64;
        return template with { Env = env, Cmd = template.Cmd is null ? null : QuoteReferences(template.Cmd) };
    }

    /// <summary>
    /// Outside any quotes, <c>$HIPPO_DATA</c> (and <c>${HIPPO_DATA}</c>, and the _BASE64 forms) becomes
    /// <c>"${HIPPO_DATA}"</c> so the expansion stays one argument; inside double quotes it already is; inside single
    /// quotes it stays literal, as the shell would leave it.
    /// </summary>
    public static string QuoteReferences(string cmd)
    {
        var result = new StringBuilder(cmd.Length + 16);
        char? quote = null;
        for (var i = 0; i < cmd.Length; i++)
        {
            var c = cmd[i];
            if (c == '\\' && quote != '\'' && i + 1 < cmd.Length)
            {
                result.Append(c).Append(cmd[++i]);
                continue;
            }

            if (quote is null && c is '\'' or '"')
                quote = c;
            else if (quote == c)
                quote = null;

            if (quote is null && c == '$' && Reference(cmd, i) is { } reference)
            {
                result.Append("\"${").Append(reference.Name).Append("}\"");
                i += reference.Length - 1;
                continue;
            }

            result.Append(c);
        }

        return result.ToString();
    }

    private static (string Name, int Length)? Reference(string cmd, int at)
    {
        foreach (var name in (string[])[Base64Variable, Variable])
        {
            if (string.CompareOrdinal(cmd, at, "${" + name + "}", 0, name.Length + 3) == 0)
                return (name, name.Length + 3);
            if (string.CompareOrdinal(cmd, at, "$" + name, 0, name.Length + 1) == 0
                && (at + name.Length + 1 >= cmd.Length || !(char.IsLetterOrDigit(cmd[at + name.Length + 1]) || cmd[at + name.Length + 1] == '_')))
                return (name, name.Length + 1);
        }

        return null;
    }
}
