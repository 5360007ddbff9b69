-- Schema integrity: a column that names another table's row is a foreign key, and the value
-- lists the code declares once are the CHECKs here (tests/test_schema_integrity.py compares
-- them with core.runs.TRIGGERS, core.checkout.MISMATCH_KINDS and
-- jobs.cleanup_decisions.ARCHIVE_REASONS).
--
-- Not foreign keys, on purpose: registration_id columns (webhook_events and its archive,
-- reconciliation_items) point into the app's own registrations table, whose rows cleanup
-- archives and the app may delete; the reference is kept as history, not enforced.

-- Run pointers. Each is optional, so a pruned run leaves the pointer empty (ON DELETE SET
-- NULL) instead of blocking the prune. A pointer already naming no row (a run deleted by
-- hand) is emptied first so the constraint can be validated.
UPDATE reconciliation_runs r SET job_run_id = NULL
WHERE job_run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM job_runs j WHERE j.id = r.job_run_id);
ALTER TABLE reconciliation_runs DROP CONSTRAINT IF EXISTS reconciliation_runs_job_run_fkey;
ALTER TABLE reconciliation_runs ADD CONSTRAINT reconciliation_runs_job_run_fkey
    FOREIGN KEY (job_run_id) REFERENCES job_runs (id) ON DELETE SET NULL;

UPDATE reconciliation_items i SET last_seen_run_id = NULL
WHERE last_seen_run_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM reconciliation_runs r WHERE r.id = i.last_seen_run_id);
ALTER TABLE reconciliation_items DROP CONSTRAINT IF EXISTS reconciliation_items_last_seen_run_fkey;
ALTER TABLE reconciliation_items ADD CONSTRAINT reconciliation_items_last_seen_run_fkey
    FOREIGN KEY (last_seen_run_id) REFERENCES reconciliation_runs (id) ON DELETE SET NULL;

UPDATE cleanup_runs c SET reconciliation_run_id = NULL
WHERE reconciliation_run_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM reconciliation_runs r WHERE r.id = c.reconciliation_run_id);
ALTER TABLE cleanup_runs DROP CONSTRAINT IF EXISTS cleanup_runs_reconciliation_run_fkey;
ALTER TABLE cleanup_runs ADD CONSTRAINT cleanup_runs_reconciliation_run_fkey
    FOREIGN KEY (reconciliation_run_id) REFERENCES reconciliation_runs (id) ON DELETE SET NULL;

-- The archive can be large: the constraint is added NOT VALID (new rows are checked at
-- once) and validated after, which reads the table without blocking its writers.
UPDATE webhook_events_archive a SET cleanup_run_id = NULL
WHERE cleanup_run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM cleanup_runs c WHERE c.id = a.cleanup_run_id);
ALTER TABLE webhook_events_archive DROP CONSTRAINT IF EXISTS webhook_events_archive_cleanup_run_fkey;
ALTER TABLE webhook_events_archive ADD CONSTRAINT webhook_events_archive_cleanup_run_fkey
    FOREIGN KEY (cleanup_run_id) REFERENCES cleanup_runs (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE webhook_events_archive VALIDATE CONSTRAINT webhook_events_archive_cleanup_run_fkey;

-- registrations_archive.cleanup_run_id and reconciliation_items.run_id were foreign keys
-- from the start (0030, 0020).

-- One list of triggers (core.runs.TRIGGERS) for every run table, without the 'test' value
-- the test suite used to write: tests now record real triggers. Rows a test run left in a
-- production database count as command-line runs.
UPDATE job_runs SET trigger = 'cli' WHERE trigger = 'test';
UPDATE reconciliation_runs SET trigger = 'cli' WHERE trigger = 'test';
UPDATE cleanup_runs SET trigger = 'cli' WHERE trigger = 'test';
UPDATE database_health_snapshots SET trigger = 'cli' WHERE trigger = 'test';

ALTER TABLE job_runs DROP CONSTRAINT IF EXISTS job_runs_trigger_check;
ALTER TABLE job_runs ADD CONSTRAINT job_runs_trigger_check
    CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup'));
ALTER TABLE reconciliation_runs DROP CONSTRAINT IF EXISTS reconciliation_runs_trigger_check;
ALTER TABLE reconciliation_runs ADD CONSTRAINT reconciliation_runs_trigger_check
    CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup'));
ALTER TABLE cleanup_runs DROP CONSTRAINT IF EXISTS cleanup_runs_trigger_check;
ALTER TABLE cleanup_runs ADD CONSTRAINT cleanup_runs_trigger_check
    CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup'));
ALTER TABLE database_health_snapshots DROP CONSTRAINT IF EXISTS database_health_snapshots_trigger_check;
ALTER TABLE database_health_snapshots ADD CONSTRAINT database_health_snapshots_trigger_check
    CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup'));

-- Why cleanup archived a registration (jobs.cleanup_decisions.ARCHIVE_REASONS).
ALTER TABLE registrations_archive DROP CONSTRAINT IF EXISTS registrations_archive_reason_check;
ALTER TABLE registrations_archive ADD CONSTRAINT registrations_archive_reason_check
    CHECK (archive_reason IN ('session_expired', 'session_not_found', 'no_session'));
