using System.Reflection;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>
/// What <c>scripts/package.sh</c> makes. scripts/test.sh builds everything once before the suite and names the folder in
/// LONGSHORE_DIST; without it (a single test class run by hand) the artifacts are built here, once per run, into the
/// checkout's dist/.
/// </summary>
public static class Artifacts
{
    public const string Image = "localhost/longshore:latest";

    public const string BaseImage = "localhost/longshore-base:bookworm";

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static readonly HashSet<string> Built = new(StringComparer.Ordinal);
    private static readonly bool Prebuilt = Environment.GetEnvironmentVariable("LONGSHORE_DIST") is { Length: > 0 };

    public static string Dist { get; } = Prebuilt ? Environment.GetEnvironmentVariable("LONGSHORE_DIST")! : Path.Combine(Checkout.Root!, "dist");

    /// <summary>What <c>longshore --version</c> says for this checkout: the version, <c>+</c>, the commit.</summary>
    public static string InformationalVersion { get; } =
        typeof(Cli.LongshoreCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;

    public static string Version { get; } = InformationalVersion.Split('+')[0];

    public static string Tarball(string rid) => Path.Combine(Dist, $"longshore-{Version}-{rid}.tar.gz");

    public static string Deb(string arch) => Path.Combine(Dist, $"longshore_{Version}_{arch}.deb");

    public static string ImageArchive => Path.Combine(Dist, "longshore-image.tar");

    /// <summary>The executables, tarballs and .debs of both platforms.</summary>
    public static Task BinariesAsync() => EnsureAsync("binaries");

    /// <summary>The image (and its base, localhost/longshore-base:bookworm) in podman's storage, and its archive.</summary>
    public static Task ImageAsync() => EnsureAsync("image");

    /// <summary>
    /// The image imported into the test cluster's containerd too (scripts/setup-kubernetes.sh with LONGSHORE_K8S_IMAGES).
    /// scripts/test.sh imports it after building; by hand it is built and imported here, once per run.
    /// </summary>
    public static async Task ImageInClusterAsync()
    {
        await ImageAsync();
        await OnceAsync("image-in-cluster", "env", $"LONGSHORE_K8S_IMAGES={ImageArchive}", "bash", Path.Combine(Checkout.Root!, "scripts", "setup-kubernetes.sh"));
    }

    private static Task EnsureAsync(string target) => OnceAsync(target, "bash", Path.Combine(Checkout.Root!, "scripts", "package.sh"), target);

    /// <summary>Runs the command once per test run under the key; nothing when scripts/test.sh prepared everything.</summary>
    private static async Task OnceAsync(string key, string file, params string[] args)
    {
        if (Prebuilt)
            return;
        await Gate.WaitAsync();
        try
        {
            if (Built.Add(key))
                await Processes.RunCheckedAsync(file, args);
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Runs a bash script as root in a throwaway container of the Debian minbase image, with dist/ at /dist.</summary>
    public static Task<(int ExitCode, string Stdout, string Stderr)> InMinbaseAsync(string script, params string[] podmanOptions) =>
        Processes.RunAsync("podman", ["run", "--rm", "--network", "none", "-v", $"{Dist}:/dist:ro", .. podmanOptions, BaseImage, "bash", "-euo", "pipefail", "-c", script],
            timeout: TimeSpan.FromMinutes(5));
}
