-- sweep_runs accepts the one list of triggers every run table accepts (core/runs.py), and
-- points at its job_runs row like reconciliation_runs does.
ALTER TABLE sweep_runs DROP CONSTRAINT IF EXISTS sweep_runs_trigger_check;
ALTER TABLE sweep_runs ADD CONSTRAINT sweep_runs_trigger_check
    CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup'));
ALTER TABLE sweep_runs ADD COLUMN IF NOT EXISTS job_run_id bigint
    CONSTRAINT sweep_runs_job_run_fkey REFERENCES job_runs (id);
