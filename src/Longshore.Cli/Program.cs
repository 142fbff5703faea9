using Longshore.Cli;

return await LongshoreCommand.RunAsync(args);
