-- What the job-crash scenario (devharness/scenarios/job_crash.py) reads.

-- name: job_run_by_pid
-- The run of a job started by this process (its pid), its status and error.
SELECT id, status, error FROM job_runs WHERE job = :job AND pid = :pid ORDER BY id DESC LIMIT 1
