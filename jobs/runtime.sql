-- What every job shares (jobs/runtime.py): its advisory lock and its job_runs row.

-- name: try_lock
-- Take the job's session-level advisory lock if it is free (true) or say it is held (false).
-- ns keeps the project's keys apart from the application's; the job name is hashed.
SELECT pg_try_advisory_lock(:ns, hashtext(:job))

-- name: unlock
-- Release the lock taken by try_lock on this same connection.
SELECT pg_advisory_unlock(:ns, hashtext(:job))

-- name: job_is_running
-- True while some session holds the job's lock; works from a read-only connection.
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted
      AND classid = :ns AND objid = hashtext(:job)::oid)

-- name: start_run
-- A new run, 'running' until finish_run; host and pid let the dashboard find the row of a
-- process it started. server_started_at: the server start its liveness lock is taken on
-- (hold_run, in the same transaction, so no other session sees the row without its lock).
INSERT INTO job_runs (job, status, trigger, started_at, host, pid, server_started_at)
VALUES (:job, 'running', :trigger, :started, :host, :pid, pg_postmaster_start_time())
RETURNING id

-- name: hold_run
-- The run's liveness lock, session-level, keyed by its row's id (ids wrap at 2^31): held
-- while the run's session lives, freed by PostgreSQL when the process dies.
SELECT pg_advisory_lock(:ns, CAST(CAST(:id AS bigint) % 2147483648 AS integer))

-- name: session_alive
-- A round trip on the run's session: fails once that session has ended (database restarted).
SELECT 1

-- name: unheld_running_runs
-- 'running' rows (other than :own) whose liveness lock nobody holds, and whether that lock
-- was taken on the server's current start (then a free lock proves the run is over).
SELECT r.id, r.job, r.host, r.pid,
       coalesce(r.server_started_at = pg_postmaster_start_time(), false) AS same_server_start
FROM job_runs AS r
WHERE r.status = 'running' AND r.id <> :own
  AND NOT EXISTS (
      SELECT 1 FROM pg_locks AS l
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.classid = :ns AND l.objid = CAST(r.id % 2147483648 AS oid)
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
ORDER BY r.id

-- name: close_abandoned_runs
-- Record these runs failed as abandoned, if still 'running' with their lock still free (a
-- run finishing meanwhile keeps its own outcome). The end is not known: finished_at is the
-- closing run's start (never before the run's own), duration_ms stays empty.
UPDATE job_runs AS r
SET status = 'failed', finished_at = greatest(r.started_at, CAST(:now AS timestamptz)),
    error = 'abandoned: its process'
            || coalesce(' (pid ' || r.pid || coalesce(' on ' || r.host, '') || ')', '')
            || ' ended without recording how the run ended (killed, or its machine stopped); '
            || 'closed when run ' || CAST(:own AS text) || ' (' || CAST(:closer AS text) || ') started'
WHERE r.id = ANY(CAST(:ids AS bigint[])) AND r.status = 'running'
  AND NOT EXISTS (
      SELECT 1 FROM pg_locks AS l
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.classid = :ns AND l.objid = CAST(r.id % 2147483648 AS oid)
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
RETURNING r.id, r.job

-- name: report_progress
-- What the run has done so far (a JSON object), written in its own short transaction.
UPDATE job_runs SET progress = CAST(:progress AS jsonb) WHERE id = :id

-- name: finish_run
-- The run's outcome; duration_ms is measured by the job on a monotonic clock.
UPDATE job_runs
SET status = :status, finished_at = :finished, error = :error,
    duration_ms = :duration_ms, summary = CAST(:summary AS jsonb)
WHERE id = :id
