-- Cleanup's run record (jobs/cleanup/command.py): one cleanup_runs row per run, dry or not.

-- name: start_run
-- A new cleanup run, 'running' until its last update_run; its id is the archives' cleanup_run_id.
INSERT INTO cleanup_runs (status, trigger, dry_run, pending_days, events_days, pending_cutoff,
                          events_cutoff, registrations_skipped, started_at)
VALUES ('running', :trigger, :dry_run, :pending_days, :events_days, :pending_cutoff,
        :events_cutoff, :registrations_skipped, :started_at)
RETURNING id

-- name: update_run
-- Counters as they stand; called after every batch so the Health page shows progress, and
-- once at the end with the status, the finish time and the job's monotonic duration.
UPDATE cleanup_runs SET
    status = :status,
    finished_at = :finished_at,
    duration_ms = :duration_ms,
    stale_pending_found = :stale_pending_found,
    registrations_archived = :registrations_archived,
    registrations_kept_paid = :registrations_kept_paid,
    registrations_kept_open = :registrations_kept_open,
    registrations_unchecked = :registrations_unchecked,
    registrations_fixed = :registrations_fixed,
    registrations_queued = :registrations_queued,
    reconciliation_run_id = :reconciliation_run_id,
    events_matched = :events_matched,
    events_archived = :events_archived,
    event_batches = :event_batches,
    events_kept_failed = :events_kept_failed,
    events_kept_open = :events_kept_open,
    details = CAST(:details AS jsonb),
    error = :error
WHERE id = :id
