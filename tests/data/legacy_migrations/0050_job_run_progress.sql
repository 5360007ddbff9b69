-- A job started from the dashboard runs as its own process ("python -m jobs <command>"); the
-- dashboard follows it through its job_runs row. pid (with host) finds the row of the process
-- it started; progress is what the job has done so far (a JSON object the job writes as it
-- goes, e.g. {"done": 1200, "total": 5000, "message": "batch 3"}), left in place at the end.
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS pid integer;
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS progress jsonb;
CREATE INDEX IF NOT EXISTS job_runs_host_pid_idx ON job_runs (host, pid) WHERE pid IS NOT NULL;

-- Who started a run from the dashboard (the signed-in user's e-mail or name); NULL for runs
-- started from a terminal, cron or the scheduler.
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS started_by text;
