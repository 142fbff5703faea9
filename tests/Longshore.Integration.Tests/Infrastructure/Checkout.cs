namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>The source checkout the tests were built from.</summary>
public static class Checkout
{
    /// <summary>The folder holding Longshore.sln, or null when the tests run outside a checkout.</summary>
    public static string? Root { get; } = Find();

    private static string? Find()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Longshore.sln")))
            dir = dir.Parent;
        return dir?.FullName;
    }
}
