using System.CommandLine;
using Longshore.Backends.Kubernetes;
using Longshore.Backends.Mesos;
using Longshore.Core.Execution;
using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Server.Hosting;
using Microsoft.AspNetCore.Builder;

namespace Longshore.Cli;

/// <summary>The <c>longshore</c> command line.</summary>
public static class LongshoreCommand
{
    public const int ExitOk = 0;
    public const int ExitFailure = 1;
    public const int ExitUsage = 2;

    public static RootCommand Create()
    {
        var root = new RootCommand("Longshore: runs work from queues and the API as container tasks.");
        var client = new ClientOptions();
        root.Options.Add(client.Server);
        root.Options.Add(client.Json);
        root.Subcommands.Add(ServerCommand());
        root.Subcommands.Add(TaskCommands.Create(client));
        root.Subcommands.Add(JobCommands.Create(client));
        root.Subcommands.Add(QueueCommands.Create(client));
        root.Subcommands.Add(HealthCommand(client));
        root.Subcommands.Add(CompletionCommand());
        return root;
    }

    /// <summary>Parses and runs; a usage error prints one line per problem and exits 2.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var result = Create().Parse(args);
        if (result.Errors.Count > 0)
        {
            foreach (var error in result.Errors)
                await Console.Error.WriteLineAsync("longshore: " + error.Message);
            await Console.Error.WriteLineAsync("See 'longshore --help'.");
            return ExitUsage;
        }

        // The web host stops gracefully on SIGTERM itself; System.CommandLine's own handler would turn that into exit 143.
        return await result.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
    }

    /// <summary>The server's <c>/healthz</c> as an exit code: what the container image's HEALTHCHECK runs.</summary>
    private static Command HealthCommand(ClientOptions client)
    {
        var command = new Command("health", "Ask the server whether it is healthy (GET /healthz): exit 0 when it is, 4 when degraded, 3 when unreachable");
        client.SetAction(command, async (_, api, json, cancellationToken) =>
        {
            var health = await api.GetAsync("/healthz", cancellationToken);
            if (json)
                Output.Json(Console.Out, health);
            else
                Console.WriteLine($"{Output.Text(health["status"])}: engine {Output.Text(health["engine"]?["name"])} at {Output.Text(health["engine"]?["endpoint"])}, "
                    + $"{(health["leader"]?.GetValue<bool>() == true ? "leading" : "following")}, store {Output.Text(health["store"]?["description"])}");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command CompletionCommand()
    {
        var shell = new Argument<string>("shell") { Description = "bash or zsh" };
        shell.AcceptOnlyFromAmong("bash", "zsh");
        var command = new Command("completion", "Print a shell completion script: eval \"$(longshore completion bash)\"") { shell };
        command.SetAction(result =>
        {
            // Both shells ask the binary itself through System.CommandLine's [suggest] directive.
            Console.Write(result.GetValue(shell) == "zsh"
                ? """
                  #compdef longshore
                  _longshore() { local -a c; c=("${(@f)$(longshore "[suggest:${#BUFFER}]" "$BUFFER" 2>/dev/null)}"); _describe 'longshore' c; }
                  compdef _longshore longshore

                  """
                : """
                  _longshore() { local IFS=$'\n'; COMPREPLY=($(compgen -W "$(longshore "[suggest:${#COMP_LINE}]" "$COMP_LINE" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}")); }
                  complete -o default -F _longshore longshore

                  """);
            return ExitOk;
        });
        return command;
    }

    private static Command ServerCommand()
    {
        var defaults = new LongshoreServerOptions();
        var urls = new Option<string>("--urls") { Description = "Address(es) to listen on, ';'-separated", DefaultValueFactory = _ => defaults.Urls };
        var data = new Option<string>("--data") { Description = "Folder of the embedded store", DefaultValueFactory = _ => defaults.DataDir };
        var dockerHost = new Option<string?>("--docker-host") { Description = "Engine API endpoint (default: DOCKER_HOST, then the usual Docker/Podman sockets)" };
        var allowHostPath = new Option<string[]>("--allow-host-path") { Description = "Host folder that task volumes may mount (repeatable; default none)", AllowMultipleArgumentsPerToken = false };
        var capacity = new Option<int>("--capacity") { Description = "Most runs active at once", DefaultValueFactory = _ => defaults.Scheduler.Capacity };
        var killGrace = new Option<double>("--kill-grace") { Description = "Seconds between SIGTERM and SIGKILL on kill", DefaultValueFactory = _ => defaults.Scheduler.KillGrace.TotalSeconds };
        var backoffBase = new Option<double>("--retry-backoff-base") { Description = "Seconds before the first retry (doubles each time)", DefaultValueFactory = _ => defaults.Retry.BackoffBase.TotalSeconds };
        var backoffCap = new Option<double>("--retry-backoff-cap") { Description = "Longest retry backoff in seconds", DefaultValueFactory = _ => defaults.Retry.BackoffCap.TotalSeconds };
        var reconcile = new Option<double>("--reconcile-interval") { Description = "Seconds between reconciliations with the engine", DefaultValueFactory = _ => defaults.Scheduler.ReconcileInterval.TotalSeconds };
        var logCap = new Option<int>("--log-cap-bytes") { Description = "Bytes of stdout and of stderr kept per run (the tail)", DefaultValueFactory = _ => defaults.LogCapBytes };
        var jobBackoffBase = new Option<double>("--job-backoff-base") { Description = "Seconds before restarting a replica that crashed quickly (doubles while it keeps crashing)", DefaultValueFactory = _ => defaults.Jobs.Backoff.BackoffBase.TotalSeconds };
        var jobBackoffCap = new Option<double>("--job-backoff-cap") { Description = "Longest replica restart backoff in seconds", DefaultValueFactory = _ => defaults.Jobs.Backoff.BackoffCap.TotalSeconds };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "Access tokens, one ROLE:NAME:TOKEN per line; tokens (or --tokens) are required to listen beyond loopback" };
        var tokens = new Option<string?>("--tokens") { Description = "Access tokens, ROLE:NAME:TOKEN entries ';'-separated; give them as LONGSHORE_TOKENS or in the file: a flag shows in the process list" };
        var secretsKey = new Option<string?>("--secrets-key") { Description = "Base64 32-byte key encrypting queue secrets at rest (default: <data>/secrets.key, created once); best as LONGSHORE_SECRETS_KEY" };
        var store = new Option<string?>("--store") { Description = "Where state is kept: sqlite:PATH (default <data>/longshore.db), postgres:CONNSTRING or redis:CONFIG (shared by several instances)" };
        var leaderLease = new Option<double>("--leader-lease") { Description = "Seconds a scheduler lease lasts unrenewed: with several instances on one store, a follower takes over within about 4/3 of it", DefaultValueFactory = _ => defaults.Leader.LeaseDuration.TotalSeconds };
        var secretsDir = new Option<string?>("--secrets-dir") { Description = "Folder whose files queue settings may reference as ${file:NAME} (default: none, such references are refused)" };
        var synchronous = new Option<string>("--sqlite-synchronous") { Description = "FULL (fsync every transition) or NORMAL", DefaultValueFactory = _ => defaults.SqliteSynchronous };
        var retention = new Option<double?>("--task-retention") { Description = $"Seconds an ended run is kept after its last state change; 0 keeps them (also TASK_RETENTION_SECONDS; default {defaults.Retention.MaxAge.TotalSeconds})" };
        var retentionCount = new Option<int?>("--task-retention-count") { Description = $"Most ended runs kept per task id; 0 sets no limit (also TASK_RETENTION_COUNT; default {defaults.Retention.MaxPerTaskId})" };

        var engine = new Option<string>("--engine") { Description = "Execution engine: docker (local Docker-compatible engine), mesos or kubernetes", DefaultValueFactory = _ => defaults.Engine };
        var kubeconfig = new Option<string?>("--kubeconfig") { Description = "With --engine kubernetes: kubeconfig file (default: in-cluster service account, then KUBECONFIG, then ~/.kube/config)" };
        var kubeNamespace = new Option<string>("--kube-namespace") { Description = "Namespace the task pods run in", DefaultValueFactory = _ => defaults.Kubernetes.Namespace };
        var kubeServiceAccount = new Option<string?>("--kube-service-account") { Description = "Service account the task pods run as (default: none mounted)" };
        var kubePullGrace = new Option<double>("--kube-image-pull-grace") { Description = "Seconds an image may keep failing to pull before the run fails", DefaultValueFactory = _ => defaults.Kubernetes.ImagePullGrace.TotalSeconds };
        var mesosMaster = new Option<string?>("--mesos-master") { Description = "Mesos master address(es), ','-separated, e.g. http://m1:5050,http://m2:5050 (zk:// is not supported)" };
        var mesosRole = new Option<string>("--mesos-role")
        {
            Description = "Role(s) the framework subscribes with, ','-separated",
            DefaultValueFactory = _ => string.Join(',', defaults.Mesos.Roles),
        };
        var mesosFramework = new Option<string>("--mesos-framework-name")
        {
            Description = "Framework name shown by the master; give each Longshore deployment on one cluster its own",
            DefaultValueFactory = _ => defaults.Mesos.FrameworkName,
        };
        var mesosPrincipal = new Option<string?>("--mesos-principal") { Description = "Principal for HTTP basic authentication with the master" };
        var mesosSecretFile = new Option<string?>("--mesos-secret-file") { Description = "File holding the principal's secret; never logged" };
        var mesosSecret = new Option<string?>("--mesos-secret") { Description = "The principal's secret itself, when there is no --mesos-secret-file; best as LONGSHORE_MESOS_SECRET" };
        var mesosFailover = new Option<double>("--mesos-failover-timeout") { Description = "Seconds the master keeps the framework's tasks while Longshore is away", DefaultValueFactory = _ => defaults.Mesos.FailoverTimeout.TotalSeconds };
        var mesosRefuse = new Option<double>("--mesos-refuse-seconds") { Description = "Seconds a declined agent is not offered again", DefaultValueFactory = _ => defaults.Mesos.RefuseSeconds };

        var config = new Option<string?>("--config") { Description = $"Configuration file, JSON keyed by option name without dashes (also LONGSHORE_CONFIG; default {ServerConfiguration.DefaultFile} when present)" };
        var printConfig = new Option<bool>("--print-config") { Description = "Print the effective settings (secrets masked) and where each comes from, then exit" };

        // Every option added to this command can also be given in the configuration file and as a LONGSHORE_ variable,
        // under names derived from its own (--kill-grace: key KillGrace, variable LONGSHORE_KILL_GRACE): see ServerConfiguration.
        var command = new Command("server", "Run the API, the scheduler and the engine backend (local engine or Mesos).")
        {
            urls, data, dockerHost, allowHostPath, capacity, killGrace, backoffBase, backoffCap, reconcile, logCap, store, leaderLease, synchronous, jobBackoffBase, jobBackoffCap, tokensFile, tokens, secretsKey, secretsDir,
            retention, retentionCount,
            engine, mesosMaster, mesosRole, mesosFramework, mesosPrincipal, mesosSecretFile, mesosSecret, mesosFailover, mesosRefuse,
            kubeconfig, kubeNamespace, kubeServiceAccount, kubePullGrace,
            config, printConfig,
        };
        command.SetAction(async (parsed, cancellationToken) =>
        {
            var configuration = ServerConfiguration.Load(parsed, command, config, [printConfig], Environment.GetEnvironmentVariable);
            if (configuration.Errors.Count > 0)
                return await ReportAsync(configuration.Errors);
            var result = configuration.Result;
            var options = new LongshoreServerOptions
            {
                Urls = result.GetValue(urls)!,
                DataDir = result.GetValue(data)!,
                DockerHost = result.GetValue(dockerHost),
                AllowedHostPaths = result.GetValue(allowHostPath) ?? [],
                Scheduler = new SchedulerOptions
                {
                    Capacity = result.GetValue(capacity),
                    KillGrace = Seconds(result.GetValue(killGrace)),
                    ReconcileInterval = Seconds(result.GetValue(reconcile)),
                },
                Retry = new RetryOptions { BackoffBase = Seconds(result.GetValue(backoffBase)), BackoffCap = Seconds(result.GetValue(backoffCap)) },
                LogCapBytes = result.GetValue(logCap),
                Leader = new LeaderOptions { LeaseDuration = Seconds(result.GetValue(leaderLease)) },
                Store = result.GetValue(store),
                SqliteSynchronous = result.GetValue(synchronous)!,
                TokensFile = result.GetValue(tokensFile),
                SecretsKey = result.GetValue(secretsKey),
                TokensVariable = result.GetValue(tokens),
                SecretsDir = result.GetValue(secretsDir),
                Jobs = new JobSettings { Backoff = new RetryOptions { BackoffBase = Seconds(result.GetValue(jobBackoffBase)), BackoffCap = Seconds(result.GetValue(jobBackoffCap)) } },
                Retention = new RetentionOptions
                {
                    MaxAge = result.GetValue(retention) is { } seconds ? Seconds(seconds) : HippoVariable("TASK_RETENTION_SECONDS", defaults.Retention.MaxAge.TotalSeconds, Seconds),
                    MaxPerTaskId = result.GetValue(retentionCount) ?? HippoVariable("TASK_RETENTION_COUNT", defaults.Retention.MaxPerTaskId, count => (int)count),
                },
                Engine = result.GetValue(engine)!,
                Mesos = new MesosBackendOptions
                {
                    Masters = MesosMasters(result.GetValue(mesosMaster)),
                    Roles = result.GetValue(mesosRole)!.Split(',', StringSplitOptions.TrimEntries),
                    FrameworkName = result.GetValue(mesosFramework)!,
                    Principal = result.GetValue(mesosPrincipal),
                    Secret = MesosSecret(result.GetValue(mesosSecretFile)) ?? result.GetValue(mesosSecret),
                    SecretFile = result.GetValue(mesosSecretFile),
                    FailoverTimeout = Seconds(result.GetValue(mesosFailover)),
                    RefuseSeconds = result.GetValue(mesosRefuse),
                },
                Kubernetes = new KubernetesBackendOptions
                {
                    Kubeconfig = result.GetValue(kubeconfig),
                    Namespace = result.GetValue(kubeNamespace)!,
                    ServiceAccount = result.GetValue(kubeServiceAccount),
                    ImagePullGrace = Seconds(result.GetValue(kubePullGrace)),
                },
            };
            if (result.GetValue(printConfig))
            {
                configuration.Print(Console.Out);
                return options.Validate() is { Count: > 0 } errors ? await ReportAsync(errors) : ExitOk;
            }

            return await RunServerAsync(options, cancellationToken);
        });
        return command;
    }

    /// <summary>Unparseable addresses become <c>invalid:</c> URIs so validation names them instead of dropping them.</summary>
    private static Uri[] MesosMasters(string? value) =>
        // zk://host1:2181,host2:2181/mesos is one address (refused by validation), not a list to split.
        value?.Trim().StartsWith("zk://", StringComparison.OrdinalIgnoreCase) == true
            ? [Uri.TryCreate(value.Trim(), UriKind.Absolute, out var zk) ? zk : new Uri("zk://zookeeper/")]
            : (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(master => Uri.TryCreate(master, UriKind.Absolute, out var uri) ? uri : new Uri("invalid:" + Uri.EscapeDataString(master)))
            .ToArray();

    /// <summary>The secret from its file, trailing newline dropped.</summary>
    private static string? MesosSecret(string? file) => file is not null && File.Exists(file) ? File.ReadAllText(file).TrimEnd('\r', '\n') : null;

    /// <summary>One line per failing setting on stderr; the usage exit code.</summary>
    private static async Task<int> ReportAsync(IEnumerable<string> errors)
    {
        foreach (var error in errors)
            await Console.Error.WriteLineAsync("longshore server: " + error);
        return ExitUsage;
    }

    /// <summary>
    /// A setting from Hippo's environment variable when the option is not given; one that is not a number becomes -1, so
    /// validation names the setting.
    /// </summary>
    private static T HippoVariable<T>(string name, double fallback, Func<double, T> convert) =>
        Environment.GetEnvironmentVariable(name) is not { Length: > 0 } text ? convert(fallback)
        : double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var value) && value <= int.MaxValue ? convert(value)
        : convert(-1);

    private static TimeSpan Seconds(double value) =>
        double.IsFinite(value) && Math.Abs(value) < TimeSpan.MaxValue.TotalSeconds ? TimeSpan.FromSeconds(value) : TimeSpan.MinValue;

    private static async Task<int> RunServerAsync(LongshoreServerOptions options, CancellationToken cancellationToken)
    {
        WebApplication app;
        try
        {
            app = await LongshoreHost.BuildAsync(options, cancellationToken);
        }
        catch (OptionsException e)
        {
            return await ReportAsync(e.Errors);
        }
        catch (StoreUnavailableException e)
        {
            await Console.Error.WriteLineAsync("longshore server: " + e.Message);
            return ExitFailure;
        }
        catch (EngineUnavailableException e)
        {
            // One line naming what failed: the apiserver, the credentials, or the permissions.
            await Console.Error.WriteLineAsync("longshore server: " + e.Message);
            return ExitFailure;
        }

        await using (app)
        {
            await app.RunAsync();
        }

        return ExitOk;
    }
}
