using System.Globalization;
using System.Text.RegularExpressions;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Packaging;

/// <summary>
/// The release artifacts of scripts/package.sh, tried where they are meant to run: a Debian minbase container (made by
/// debootstrap, no .NET in it) for the executable and the .deb, systemd-analyze for the unit as the .deb installs it.
/// </summary>
public sealed partial class PackageTests
{
    [Theory]
    [InlineData("linux-x64", 0x3E)]
    [InlineData("linux-arm64", 0xB7)]
    public async Task Tarball_HoldsTheExecutableForItsPlatform_WithReadmeLicenceNotesUnitAndConfig(string rid, int elfMachine)
    {
        await Artifacts.BinariesAsync();
        var name = $"longshore-{Artifacts.Version}-{rid}";

        var listing = await Processes.RunCheckedAsync("tar", "-tzf", Artifacts.Tarball(rid));
        var dir = Directory.CreateTempSubdirectory("longshore-tarball-").FullName;
        try
        {
            await Processes.RunCheckedAsync("tar", "-xzf", Artifacts.Tarball(rid), "-C", dir);
            var header = new byte[20];
            await using (var executable = File.OpenRead(Path.Combine(dir, name, "longshore")))
                await executable.ReadExactlyAsync(header);
            var notes = await File.ReadAllTextAsync(Path.Combine(dir, name, "LICENSE-NOTES.txt"));

            Assert.Equal(["LICENSE-NOTES.txt", "README.md", "longshore", "longshore.json", "longshore.service"],
                listing.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(path => path.TrimEnd('/')).Where(path => path != name)
                    .Select(path => path[(name.Length + 1)..]).Order(StringComparer.Ordinal));
            Assert.Equal([0x7F, (byte)'E', (byte)'L', (byte)'F'], header[..4]);
            Assert.Equal(elfMachine, BitConverter.ToUInt16(header, 18));
            // The runtime packs of that platform came from NuGet and went into the executable.
            Assert.Matches($@"Microsoft\.NETCore\.App\.Runtime\.{rid} +10\.\d+\.\d+ +MIT", notes);
            Assert.Matches($@"Microsoft\.AspNetCore\.App\.Runtime\.{rid} +10\.\d+\.\d+ +MIT", notes);
            Assert.Matches(@"Npgsql +[\d.]+ +PostgreSQL", notes);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task X64Executable_RunsOnDebianMinbaseWithoutDotnet_NamingVersionAndCommit()
    {
        await Artifacts.BinariesAsync();
        await Artifacts.ImageAsync();

        // The server gets as far as its SQLite store (the native library unpacked from the single file) and the engine,
        // which is missing on purpose: it must say so and exit 1.
        var (exitCode, stdout, stderr) = await Artifacts.InMinbaseAsync($"""
            if command -v dotnet || ls /usr/share/dotnet /usr/lib/dotnet /opt/dotnet 2>/dev/null; then echo "dotnet is installed"; exit 9; fi
            tar -xzf /dist/longshore-{Artifacts.Version}-linux-x64.tar.gz -C /tmp
            cd /tmp/longshore-{Artifacts.Version}-linux-x64
            ./longshore --version
            ./longshore server --data /tmp/data --docker-host unix:///tmp/no-engine.sock && exit 8 || echo "server exit $?"
            test -s /tmp/data/longshore.db && echo "store created"
            """);

        Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{stderr}");
        Assert.Equal(Artifacts.InformationalVersion, stdout.Split('\n')[0]);
        Assert.Matches("^0\\.\\d+\\.\\d+\\+[0-9a-f]{40}$", Artifacts.InformationalVersion);
        Assert.Contains("server exit 1", stdout, StringComparison.Ordinal);
        Assert.Contains("store created", stdout, StringComparison.Ordinal);
        Assert.Contains("unix:///tmp/no-engine.sock (no such socket)", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Deb_InstallsOnDebianMinbase_WithItsUserUnitAndConfig_WhichTheServerReads()
    {
        await Artifacts.BinariesAsync();
        await Artifacts.ImageAsync();

        var (exitCode, stdout, stderr) = await Artifacts.InMinbaseAsync($"""
            dpkg -i /dist/longshore_{Artifacts.Version}_amd64.deb >&2
            getent passwd longshore
            test -f /lib/systemd/system/longshore.service && echo "unit installed"
            cat /var/lib/dpkg/info/longshore.conffiles
            runuser -u longshore -- env DOTNET_BUNDLE_EXTRACT_BASE_DIR=/tmp longshore server --print-config
            """);

        Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{stderr}");
        Assert.Matches("(?m)^longshore:x:\\d+:\\d+:Longshore,*:/var/lib/longshore:/usr/sbin/nologin$", stdout);
        Assert.Contains("unit installed", stdout, StringComparison.Ordinal);
        Assert.Contains("/etc/longshore/longshore.json", stdout, StringComparison.Ordinal);
        Assert.Matches("\"Data\": +\"/var/lib/longshore\", +// file", stdout);
        Assert.Contains("file (/etc/longshore/longshore.json)", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SystemdUnit_AsTheDebInstallsIt_PassesSystemdAnalyzeVerify_AndIsHardened()
    {
        await Artifacts.BinariesAsync();
        var root = Directory.CreateTempSubdirectory("longshore-unit-").FullName;
        try
        {
            // The package's files, plus the host's own units (verify needs the targets the unit is ordered against).
            await Processes.RunCheckedAsync("dpkg-deb", "-x", Artifacts.Deb("amd64"), root);
            await Processes.RunCheckedAsync("cp", "-a", "--no-clobber", "/usr/lib/systemd/system/.", Path.Combine(root, "lib", "systemd", "system"));

            var verify = await Processes.RunAsync("systemd-analyze", ["verify", $"--root={root}", "longshore.service"]);
            var security = await Processes.RunAsync("systemd-analyze", ["security", "--offline=true", $"--root={root}", "longshore.service"]);

            Assert.True(verify.ExitCode == 0 && verify.Stderr.Length == 0 && verify.Stdout.Length == 0, $"verify exit {verify.ExitCode}: {verify.Stdout}{verify.Stderr}");
            var exposure = ExposureLevel().Match(security.Stdout);
            Assert.True(exposure.Success, security.Stdout + security.Stderr);
            // systemd rates 0 (locked down) to 10 (exposed); a plain unit with no hardening is 9.6.
            Assert.InRange(double.Parse(exposure.Groups[1].Value, CultureInfo.InvariantCulture), 0, 2.0);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task ReadmeInstall_BinaryAndDebianPackageSteps_RunAsWrittenOnDebianMinbase()
    {
        await Artifacts.BinariesAsync();
        await Artifacts.ImageAsync();
        var readme = await File.ReadAllTextAsync(Path.Combine(Checkout.Root!, "README.md"));

        var (exitCode, stdout, stderr) = await Artifacts.InMinbaseAsync(
            $"mkdir /work && cp /dist/*.tar.gz /dist/*.deb /work && cd /work\n{Block(readme, "### Binary")}\n{Block(readme, "### Debian package")}");

        Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{stderr}");
        Assert.Contains(Artifacts.InformationalVersion, stdout, StringComparison.Ordinal);
        Assert.Matches("\"Data\": +\"/var/lib/longshore\", +// file", stdout);
    }

    [Fact]
    public async Task ReadmeInstall_ServiceAndImageSteps_NameWhatThePackageAndTheImageHold()
    {
        await Artifacts.BinariesAsync();
        var readme = await File.ReadAllTextAsync(Path.Combine(Checkout.Root!, "README.md"));
        var service = Block(readme, "### systemd");
        var image = Block(readme, "### Container image");
        var unit = await File.ReadAllTextAsync(Path.Combine(Checkout.Root!, "deploy", "systemd", "longshore.service"));
        var contents = await Processes.RunCheckedAsync("dpkg-deb", "-c", Artifacts.Deb("amd64"));

        Assert.Contains("systemctl enable --now longshore", service, StringComparison.Ordinal);
        Assert.Contains("./lib/systemd/system/longshore.service", contents, StringComparison.Ordinal);
        // The file the README writes the tokens to is the one the unit reads.
        Assert.Contains(">/etc/longshore/longshore.env", service, StringComparison.Ordinal);
        Assert.Contains("EnvironmentFile=-/etc/longshore/longshore.env", unit, StringComparison.Ordinal);
        Assert.Contains($"podman load -i {Path.GetFileName(Artifacts.ImageArchive)}", image, StringComparison.Ordinal);
        Assert.Contains("scripts/package.sh image", image, StringComparison.Ordinal);
        Assert.EndsWith(Artifacts.Image, image.TrimEnd(), StringComparison.Ordinal);
        // The image's server finds the engine where the README mounts it, with no setting.
        Assert.Contains("-v /run/podman/podman.sock:/run/podman/podman.sock", image, StringComparison.Ordinal);
        Assert.Contains("unix:///run/podman/podman.sock", Backends.Docker.DockerEndpoint.Candidates(null, _ => null));
    }

    /// <summary>The first ```sh block after a README heading.</summary>
    private static string Block(string readme, string heading)
    {
        // The heading's line may go on ("### Binary (linux-x64, linux-arm64)"); a heading not found is a failure, not the first block.
        var at = readme.IndexOf("\n" + heading, StringComparison.Ordinal);
        Assert.True(at >= 0, $"README has no heading '{heading}'");
        var section = readme[readme.IndexOf('\n', at + 1)..];
        var start = section.IndexOf("```sh\n", StringComparison.Ordinal) + "```sh\n".Length;
        return section[start..section.IndexOf("\n```", start, StringComparison.Ordinal)];
    }

    [GeneratedRegex(@"Overall exposure level for longshore\.service: (\d+\.\d+)")]
    private static partial Regex ExposureLevel();
}
