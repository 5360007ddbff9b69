-- A job killed mid-run (SIGKILL, OOM, a machine lost) no longer leaves its job_runs row
-- 'running' for ever.
--
-- Each run now holds a session-level advisory lock keyed by its row's id, on a connection it
-- keeps for the whole run (jobs/runtime.py). PostgreSQL frees the lock the moment that
-- session ends, which it does when the process dies. The next run of any job closes every
-- 'running' row whose lock is free (recorded 'failed' with the reason 'abandoned: ...'), but
-- only a row whose lock was taken on this very server start (server_started_at equal to
-- pg_postmaster_start_time()): after a database restart every lock is gone, also those of
-- runs still alive (a `watch` riding the restart out), so an older row is closed only when
-- its host is the closing process's host and its pid is no longer alive there.

ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS server_started_at timestamptz;
COMMENT ON COLUMN job_runs.server_started_at IS
    'pg_postmaster_start_time() when the run took its liveness lock: a free lock proves the run '
    'ended only on the same server start.';

-- The next run looks for 'running' rows on every start: few rows, found by this index.
CREATE INDEX IF NOT EXISTS job_runs_running_idx ON job_runs (id) WHERE status = 'running';
