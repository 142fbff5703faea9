using Longshore.Sources.Nats;

namespace Longshore.Core.Tests.Queues;

public sealed class NatsSourceTests
{
    [Theory]
    [InlineData("$JS.ACK.ORDERS.longshore-q.3.17.9.1700000000000000000.0", 3)]
    [InlineData("$JS.ACK.hub.ACCHASH.ORDERS.longshore-q.7.17.9.1700000000000000000.0.token", 7)]
    [InlineData("_INBOX.not-an-ack", 1)]
    public void Deliveries_ReadsTheDeliveryCountFromEitherReplySubjectFormat(string subject, int expected) =>
        Assert.Equal(expected, NatsSource.Deliveries(subject));
}
