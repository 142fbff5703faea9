namespace Longshore.Storage.Postgres;

/// <summary>
/// The PostgreSQL schema, one step per version, kept in <c>schema_version</c>. Steps run at start, each in its own
/// transaction under an advisory lock, so instances starting together migrate once. Steps are only ever appended.
/// The columns are those of the SQLite store (times as Unix milliseconds, definitions as JSON text), so rows map alike.
/// </summary>
internal static class PostgresMigrations
{
    public static readonly string[] Steps =
    [
        """
        CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
        CREATE TABLE runs (
            seq bigserial PRIMARY KEY,
            mesos_id text NOT NULL UNIQUE,
            family_id text NOT NULL,
            attempt integer NOT NULL,
            state text NOT NULL,
            definition text NOT NULL,
            task_retries_left integer NOT NULL,
            system_retries_left integer NOT NULL,
            not_before bigint NOT NULL,
            created_at bigint NOT NULL,
            staged_at bigint,
            started_at bigint,
            finished_at bigint,
            updated_at bigint NOT NULL,
            exit_code integer,
            reason text,
            agent text,
            container_id text,
            retry_of text,
            retried_as text,
            job_id text,
            job_group integer,
            job_generation integer,
            queue_id text,
            message_key text
        );
        CREATE INDEX runs_state_due ON runs (state, not_before, seq);
        CREATE INDEX runs_family_state ON runs (family_id, state);
        CREATE INDEX runs_state_seq ON runs (state, seq);
        CREATE INDEX runs_family_seq ON runs (family_id, seq);
        CREATE INDEX runs_staged ON runs (staged_at) WHERE staged_at IS NOT NULL;
        CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
        CREATE INDEX runs_job ON runs (job_id, seq) WHERE job_id IS NOT NULL;
        CREATE INDEX runs_queue_state ON runs (queue_id, state) WHERE queue_id IS NOT NULL;
        CREATE INDEX runs_message_key ON runs (message_key, seq) WHERE message_key IS NOT NULL;
        CREATE TABLE run_logs (mesos_id text PRIMARY KEY, stdout text NOT NULL, stderr text NOT NULL, truncated boolean NOT NULL);
        CREATE TABLE jobs (
            id text PRIMARY KEY,
            definition text NOT NULL,
            state text NOT NULL,
            generation integer NOT NULL,
            version bigint NOT NULL,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL
        );
        CREATE TABLE queues (
            id text PRIMARY KEY,
            template text NOT NULL,
            block text NOT NULL,
            created_at bigint NOT NULL,
            last_poll_at bigint,
            last_error text,
            next_poll_at bigint
        );
        CREATE TABLE queue_state (queue_id text NOT NULL, key text NOT NULL, value text NOT NULL, PRIMARY KEY (queue_id, key));
        CREATE TABLE queue_batches (message_key text PRIMARY KEY, queue_id text NOT NULL, handles text NOT NULL, state text NOT NULL);
        CREATE INDEX queue_batches_pending ON queue_batches (queue_id) WHERE state = 'PENDING';
        -- One row from the start, so that acquiring the lease is always a row lock (FOR UPDATE), never an insert race.
        CREATE TABLE leases (name text PRIMARY KEY, holder text NOT NULL, term bigint NOT NULL, expires_at bigint NOT NULL);
        INSERT INTO leases (name, holder, term, expires_at) VALUES ('scheduler', '', 0, 0);
        """,
        """
        CREATE TABLE queue_dedup (
            queue_id text NOT NULL,
            dedup_key text NOT NULL,
            message_key text NOT NULL,
            handle text,
            expires_at bigint NOT NULL,
            PRIMARY KEY (queue_id, dedup_key)
        );
        CREATE INDEX queue_dedup_message ON queue_dedup (message_key);
        CREATE INDEX queue_dedup_expiry ON queue_dedup (expires_at);
        """,
        """
        -- Retention deletes ended runs oldest first by their last state change, without reading the runs it keeps.
        CREATE INDEX runs_ended ON runs (updated_at) WHERE state IN ('TASK_FINISHED', 'TASK_FAILED', 'TASK_KILLED', 'TASK_LOST', 'TASK_ERROR',
            'TASK_DROPPED', 'TASK_GONE', 'TASK_GONE_BY_OPERATOR', 'TASK_UNKNOWN');
        """,
        """
        -- A batch's outcome is set when its run chain ends, so finding the batches to settle reads only those, instead of
        -- looking up the runs of every pending batch on each settling pass.
        ALTER TABLE queue_batches ADD COLUMN outcome text;
        UPDATE queue_batches b SET outcome = CASE r.state WHEN 'TASK_FINISHED' THEN 'FINISHED' ELSE 'FAILED' END
        FROM runs r
        WHERE b.state = 'PENDING' AND r.seq = (SELECT MAX(seq) FROM runs WHERE message_key = b.message_key) AND r.retried_as IS NULL
          AND r.state IN ('TASK_FINISHED', 'TASK_FAILED', 'TASK_KILLED', 'TASK_LOST', 'TASK_ERROR', 'TASK_DROPPED', 'TASK_GONE',
                          'TASK_GONE_BY_OPERATOR', 'TASK_UNKNOWN');
        CREATE INDEX queue_batches_ended ON queue_batches (outcome) WHERE state = 'PENDING' AND outcome IS NOT NULL;
        """,
    ];
}
