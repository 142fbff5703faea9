using System.CommandLine;
using Longshore.Cli;

return await LongshoreCommand.Create().Parse(args).InvokeAsync();
