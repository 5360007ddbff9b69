-- health_reports like the other run tables (0055): the one trigger list of core.runs.TRIGGERS
-- (without the 'test' value 0090 allowed), and job_run_id a foreign key to the run that
-- built the report, emptied if that run is pruned.
UPDATE health_reports SET trigger = 'cli' WHERE trigger NOT IN ('cli', 'dashboard', 'schedule', 'cleanup');
ALTER TABLE health_reports DROP CONSTRAINT IF EXISTS health_reports_trigger_check;
ALTER TABLE health_reports ADD CONSTRAINT health_reports_trigger_check
    CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup'));

UPDATE health_reports h SET job_run_id = NULL
WHERE job_run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM job_runs j WHERE j.id = h.job_run_id);
ALTER TABLE health_reports DROP CONSTRAINT IF EXISTS health_reports_job_run_fkey;
ALTER TABLE health_reports ADD CONSTRAINT health_reports_job_run_fkey
    FOREIGN KEY (job_run_id) REFERENCES job_runs (id) ON DELETE SET NULL;
