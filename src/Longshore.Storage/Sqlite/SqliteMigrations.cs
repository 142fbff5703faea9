namespace Longshore.Storage.Sqlite;

/// <summary>
/// The schema, one step per version. A database is moved forward inside one transaction per step and its
/// version kept in <c>PRAGMA user_version</c>; steps are never edited once released, only appended.
/// </summary>
internal static class SqliteMigrations
{
    public static readonly string[] Steps =
    [
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE runs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            mesos_id TEXT NOT NULL UNIQUE,
            family_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            state TEXT NOT NULL,
            definition TEXT NOT NULL,
            task_retries_left INTEGER NOT NULL,
            system_retries_left INTEGER NOT NULL,
            not_before INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            staged_at INTEGER,
            started_at INTEGER,
            finished_at INTEGER,
            updated_at INTEGER NOT NULL,
            exit_code INTEGER,
            reason TEXT,
            agent TEXT,
            container_id TEXT,
            retry_of TEXT,
            retried_as TEXT
        );
        CREATE INDEX runs_state_due ON runs (state, not_before, seq);
        CREATE INDEX runs_family_state ON runs (family_id, state);
        CREATE TABLE run_logs (
            mesos_id TEXT PRIMARY KEY,
            stdout TEXT NOT NULL,
            stderr TEXT NOT NULL,
            truncated INTEGER NOT NULL
        );
        """,
        """
        ALTER TABLE runs ADD COLUMN job_id TEXT;
        ALTER TABLE runs ADD COLUMN job_group INTEGER;
        ALTER TABLE runs ADD COLUMN job_generation INTEGER;
        CREATE INDEX runs_job ON runs (job_id, seq) WHERE job_id IS NOT NULL;
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            state TEXT NOT NULL,
            generation INTEGER NOT NULL,
            version INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        """,
        """
        -- Filtered listings walk newest first; without these they sort every matching row.
        CREATE INDEX runs_state_seq ON runs (state, seq);
        CREATE INDEX runs_family_seq ON runs (family_id, seq);
        """,
        """
        ALTER TABLE runs ADD COLUMN queue_id TEXT;
        ALTER TABLE runs ADD COLUMN message_key TEXT;
        CREATE INDEX runs_queue_state ON runs (queue_id, state) WHERE queue_id IS NOT NULL;
        CREATE INDEX runs_message_key ON runs (message_key, seq) WHERE message_key IS NOT NULL;
        CREATE TABLE queues (
            id TEXT PRIMARY KEY,
            template TEXT NOT NULL,
            block TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            last_poll_at INTEGER,
            last_error TEXT,
            next_poll_at INTEGER
        );
        CREATE TABLE queue_state (queue_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (queue_id, key));
        CREATE TABLE queue_batches (
            message_key TEXT PRIMARY KEY,
            queue_id TEXT NOT NULL,
            handles TEXT NOT NULL,
            state TEXT NOT NULL
        );
        CREATE INDEX queue_batches_pending ON queue_batches (state) WHERE state = 'PENDING';
        """,
        """
        CREATE TABLE queue_dedup (
            queue_id TEXT NOT NULL,
            dedup_key TEXT NOT NULL,
            message_key TEXT NOT NULL,
            handle TEXT,
            expires_at INTEGER NOT NULL,
            PRIMARY KEY (queue_id, dedup_key)
        );
        CREATE INDEX queue_dedup_message ON queue_dedup (message_key);
        CREATE INDEX queue_dedup_expiry ON queue_dedup (expires_at);
        """,
        """
        -- A batch's outcome is set when its run chain ends, so finding the batches to settle no longer walks every
        -- pending batch's runs on each poll pass.
        ALTER TABLE queue_batches ADD COLUMN outcome TEXT;
        UPDATE queue_batches SET outcome = (
            SELECT CASE r.state WHEN 'TASK_FINISHED' THEN 'FINISHED' ELSE 'FAILED' END FROM runs r
            WHERE r.seq = (SELECT MAX(seq) FROM runs WHERE message_key = queue_batches.message_key) AND r.retried_as IS NULL
              AND r.state IN ('TASK_FINISHED', 'TASK_FAILED', 'TASK_KILLED', 'TASK_LOST', 'TASK_ERROR', 'TASK_DROPPED', 'TASK_GONE',
                              'TASK_GONE_BY_OPERATOR', 'TASK_UNKNOWN'))
        WHERE state = 'PENDING';
        CREATE INDEX queue_batches_ended ON queue_batches (outcome) WHERE state = 'PENDING' AND outcome IS NOT NULL;
        """,
        """
        -- The scheduler lease; term grows on every change of holder and fences the writes of older leaders.
        CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, term INTEGER NOT NULL, expires_at INTEGER NOT NULL);
        """,
        """
        -- Retention deletes ended runs oldest first by their last state change, without reading the runs it keeps. The
        -- predicate is RunRows.EndedStates, written out in the same order (a partial index serves only that exact term).
        CREATE INDEX runs_ended ON runs (updated_at) WHERE state IN ('TASK_FINISHED', 'TASK_FAILED', 'TASK_KILLED', 'TASK_LOST', 'TASK_ERROR',
            'TASK_DROPPED', 'TASK_GONE', 'TASK_GONE_BY_OPERATOR', 'TASK_UNKNOWN');
        """,
    ];
}
