-- Cleanup's third step (jobs/cleanup/history.py): the monitor's own history older than the
-- retention. Each statement says how many rows it removed (or, :dry_run, would remove).

-- name: prune_alert_notifications
-- Notifications queued before :before that are done with: sent, or given up (no next attempt).
WITH doomed AS (
    SELECT id FROM alert_notifications
    WHERE created_at < :before AND (status = 'sent' OR next_attempt_at IS NULL)
), removed AS (
    DELETE FROM alert_notifications n USING doomed d WHERE n.id = d.id AND NOT :dry_run RETURNING n.id
)
SELECT (SELECT count(*) FROM doomed) AS matched, (SELECT count(*) FROM removed) AS removed;

-- name: prune_sweep_runs
-- Finished sweep runs started before :before that no missed event points to (those stay as
-- the history of what they found).
WITH doomed AS (
    SELECT s.id FROM sweep_runs s
    WHERE s.started_at < :before AND s.status <> 'running'
      AND NOT EXISTS (SELECT 1 FROM missed_events m WHERE m.sweep_run_id = s.id OR m.last_sweep_run_id = s.id)
), removed AS (
    DELETE FROM sweep_runs s USING doomed d WHERE s.id = d.id AND NOT :dry_run RETURNING s.id
)
SELECT (SELECT count(*) FROM doomed) AS matched, (SELECT count(*) FROM removed) AS removed;

-- name: prune_job_runs
-- Finished job runs started before :before, except each job's last run and last success
-- (the job_failed rule, the Health page and the metrics read them) and runs a kept sweep run
-- points to. Reconciliation runs and health reports keep their rows (their link is cleared).
WITH doomed AS (
    SELECT j.id FROM job_runs j
    WHERE j.started_at < :before AND j.status <> 'running'
      AND j.started_at < (SELECT max(r.started_at) FROM job_runs r WHERE r.job = j.job)
      AND NOT (j.status IN ('completed', 'needs_review') AND j.started_at =
               (SELECT max(r.started_at) FROM job_runs r
                WHERE r.job = j.job AND r.status IN ('completed', 'needs_review')))
      AND NOT EXISTS (SELECT 1 FROM sweep_runs s WHERE s.job_run_id = j.id)
), removed AS (
    DELETE FROM job_runs j USING doomed d WHERE j.id = d.id AND NOT :dry_run RETURNING j.id
)
SELECT (SELECT count(*) FROM doomed) AS matched, (SELECT count(*) FROM removed) AS removed;
