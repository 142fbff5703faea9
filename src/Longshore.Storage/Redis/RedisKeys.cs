namespace Longshore.Storage.Redis;

/// <summary>
/// The key layout under one prefix (default <c>longshore:</c>), documented in docs/scale-out.md. A run is a hash; every
/// way runs are listed is a sorted set scored by the run's <c>seq</c> (or, for <see cref="Due"/>, its not-before time).
/// </summary>
internal sealed class RedisKeys(string prefix)
{
    public string Prefix => prefix;

    /// <summary>Hash: <c>instance_id</c>, <c>schema</c>.</summary>
    public string Meta => prefix + "meta";

    /// <summary>Counter handing out run <c>seq</c> numbers.</summary>
    public string Seq => prefix + "seq";

    /// <summary>Counter advanced by every write: the change mark.</summary>
    public string Changes => prefix + "changes";

    /// <summary>Hash: the scheduler lease (<c>holder</c>, <c>term</c>, <c>expires_at</c>).</summary>
    public string Lease => prefix + "lease";

    /// <summary>Hash of one run: the columns of the SQL stores.</summary>
    public string Run(string mesosId) => prefix + "run:" + mesosId;

    /// <summary>Hash of one run's kept output.</summary>
    public string Logs(string mesosId) => prefix + "logs:" + mesosId;

    /// <summary>Sorted set of every run by seq.</summary>
    public string Runs => prefix + "runs";

    public string ByState(string state) => prefix + "state:" + state;

    public string ByFamily(string family) => prefix + "family:" + family;

    /// <summary>Set of the family ids that have (or had) runs: retention by count walks it instead of the keyspace.</summary>
    public string Families => prefix + "families";

    public string ByJob(string jobId) => prefix + "jobruns:" + jobId;

    public string ByMessage(string messageKey) => prefix + "msgruns:" + messageKey;

    /// <summary>Sorted set of a queue's runs not yet ended.</summary>
    public string QueueOpen(string queueId) => prefix + "queueopen:" + queueId;

    /// <summary>Sorted set of waiting runs scored by their not-before time.</summary>
    public string Due => prefix + "due";

    /// <summary>Hash family → number of active runs.</summary>
    public string ActiveByFamily => prefix + "activefamily";

    /// <summary>Hashes minute → count, for the dashboard's chart.</summary>
    public string Activity(string kind) => prefix + "activity:" + kind;

    public string Job(string id) => prefix + "job:" + id;

    /// <summary>Sorted set of job ids scored by creation time.</summary>
    public string Jobs => prefix + "jobs";

    public string Queue(string id) => prefix + "queue:" + id;

    public string Queues => prefix + "queues";

    public string QueueState(string id) => prefix + "queuestate:" + id;

    public string Batch(string messageKey) => prefix + "batch:" + messageKey;

    /// <summary>Set of unsettled batch keys, all queues.</summary>
    public string PendingBatches => prefix + "pending";

    /// <summary>Set of one queue's unsettled batch keys.</summary>
    public string QueuePending(string id) => prefix + "queuepending:" + id;

    /// <summary>Hash of one recorded de-duplication key: <c>message_key</c>, <c>handle</c>, <c>expires_at</c>; expires with it.</summary>
    public string Dedup(string queueId, string dedupKey) => prefix + "dedup:" + queueId + ":" + dedupKey;

    /// <summary>Sorted set of a queue's de-duplication keys by expiry (to prune and to delete with the queue).</summary>
    public string DedupIndex(string queueId) => prefix + "dedupindex:" + queueId;

    /// <summary>Set of the de-duplication keys recorded with one batch (forgotten when it is released).</summary>
    public string DedupOfBatch(string messageKey) => prefix + "dedupbatch:" + messageKey;
}
