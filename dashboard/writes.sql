-- The dashboard's writes (dashboard/writes.py) following the jobs it started: each runs as
-- its own process and records itself in job_runs.

-- name: job_run_of_process
-- The job_runs row of the run process :pid on :host started (the first, should it record
-- more than one), with its progress; none until the job has recorded its start. :since (a
-- little before the process was started) keeps an old run of a reused pid out.
SELECT id, job, status, trigger, started_at, finished_at, duration_ms, summary, error,
       progress, started_by
FROM job_runs
WHERE host = :host AND pid = :pid AND job = :job AND started_at >= :since
ORDER BY id
LIMIT 1

-- name: claim_job_run
-- Record who started a run from the dashboard, once (the first claim stands); returns the
-- run's id when it was recorded now.
UPDATE job_runs SET started_by = :actor
WHERE id = :id AND started_by IS NULL
RETURNING id
