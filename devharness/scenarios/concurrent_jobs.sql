-- What the scenarios of a job run twice at once (devharness/scenarios/concurrent_jobs.py) count.

-- name: job_runs_since
-- Runs of a job started at or after :since, by status.
SELECT status, count(*) AS n FROM job_runs
WHERE job = :job AND started_at >= :since GROUP BY status ORDER BY status
