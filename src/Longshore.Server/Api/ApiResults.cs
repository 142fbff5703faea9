using Microsoft.AspNetCore.Http;

namespace Longshore.Server.Api;

/// <summary>Every error leaves the API as <c>{"error": "..."}</c> with its status code.</summary>
internal static class ApiResults
{
    public static IResult Error(int status, string message) => Results.Json(new ErrorBody(message), statusCode: status);

    public static IResult BadRequest(IEnumerable<string> errors) => Error(StatusCodes.Status400BadRequest, string.Join("; ", errors));

    public static IResult NotFound(string mesosId) => Error(StatusCodes.Status404NotFound, $"no task with mesos_id '{mesosId}'");

    internal sealed record ErrorBody(string Error);
}
