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
-- process it started.
INSERT INTO job_runs (job, status, trigger, started_at, host, pid)
VALUES (:job, 'running', :trigger, :started, :host, :pid)
RETURNING id

-- name: report_progress
-- What the run has done so far (a JSON object), written in its own short transaction.
UPDATE job_runs SET progress = CAST(:progress AS jsonb) WHERE id = :id

-- name: finish_run
-- The run's outcome; duration_ms is measured by the job on a monotonic clock.
UPDATE job_runs
SET status = :status, finished_at = :finished, error = :error,
    duration_ms = :duration_ms, summary = CAST(:summary AS jsonb)
WHERE id = :id
