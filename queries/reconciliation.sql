-- Reconciliation page: runs, their five numbers and progress, the manual review queue.

-- name: reconciliation_last_run
-- The latest run that has finished (completed or failed; dry runs too), with its five numbers.
SELECT id, status, trigger, lookback_days, dry_run, window_start, window_end, started_at,
       finished_at, duration_ms, stripe_payments_found, local_registrations_found,
       mismatches_detected, auto_fixed_count, manual_review_needed, sessions_checked,
       pages_read, stripe_requests, already_resolved_count, fixes_superseded_count, error
FROM reconciliation_runs
WHERE status <> 'running'
ORDER BY started_at DESC, id DESC
LIMIT 1

-- name: reconciliation_run
-- One run by id (the report shown after Run now), whatever its status.
SELECT id, status, trigger, lookback_days, dry_run, window_start, window_end, started_at,
       finished_at, duration_ms, stripe_payments_found, local_registrations_found,
       mismatches_detected, auto_fixed_count, manual_review_needed, sessions_checked,
       pages_read, stripe_requests, already_resolved_count, fixes_superseded_count, error
FROM reconciliation_runs
WHERE id = :run_id

-- name: reconciliation_running_run
-- The newest run still marked running: its progress columns are updated while it goes.
-- (A row left 'running' by a killed process is told apart by the job's advisory lock.)
-- expected_sessions: what the last completed run over the same number of days checked, the
-- best guess of this run's total (Stripe's list API gives no count up front); NULL if none.
SELECT r.id, r.trigger, r.lookback_days, r.dry_run, r.started_at, r.pages_read, r.sessions_checked,
       r.stripe_requests, r.mismatches_detected, r.auto_fixed_count, r.manual_review_needed,
       (SELECT p.sessions_checked FROM reconciliation_runs p
        WHERE p.status = 'completed' AND p.lookback_days = r.lookback_days AND p.id <> r.id
        ORDER BY p.started_at DESC, p.id DESC LIMIT 1) AS expected_sessions
FROM reconciliation_runs r
WHERE r.status = 'running'
ORDER BY r.started_at DESC, r.id DESC
LIMIT 1

-- name: reconciliation_run_history
-- The last :limit finished runs (ones still running are left out), oldest first, for the
-- history chart and table.
SELECT id, status, trigger, dry_run, lookback_days, started_at, duration_ms,
       stripe_payments_found, local_registrations_found, mismatches_detected,
       auto_fixed_count, manual_review_needed, sessions_checked, stripe_requests, error
FROM (
    SELECT * FROM reconciliation_runs
    WHERE status <> 'running'
    ORDER BY started_at DESC, id DESC
    LIMIT :limit
) recent
ORDER BY started_at, id

-- name: reconciliation_kinds_for_run
-- Mismatches a run recorded, by kind and action: the items it opened plus the open items it
-- saw again (those rows stay the opening run's; last_seen_run_id points at the latest run to
-- see one), so for the run just finished this is the breakdown of its mismatches; an older
-- run no longer lists the items a later run saw again.
SELECT kind, action, count(*) AS items
FROM reconciliation_items
WHERE run_id = :run_id OR last_seen_run_id = :run_id
GROUP BY kind, action
ORDER BY kind, action

-- name: reconciliation_open_items
-- The review queue: open manual items, critical first, then newest (the Reconciliation page
-- and `python -m jobs review` both list it with this query).
SELECT id, kind, severity, stripe_checkout_session_id, registration_id::text AS registration_id,
       created_at, last_seen_at, run_id, details ->> 'reason' AS reason, details
FROM reconciliation_items
WHERE action = 'manual_review' AND resolved_at IS NULL AND NOT dry_run
ORDER BY (severity = 'critical') DESC, created_at DESC, id DESC
LIMIT :limit

-- name: reconciliation_item
-- One item with both sides' facts (the page's detail and `python -m jobs review show`).
SELECT id, run_id, kind, action, severity, dry_run, stripe_checkout_session_id,
       registration_id::text AS registration_id, details, created_at, last_seen_at,
       last_seen_run_id, resolved_at, resolved_by, resolution_note
FROM reconciliation_items
WHERE id = :item_id

-- name: reconciliation_resolved_items
-- Items people resolved, newest resolution first: the queue's history.
SELECT id, kind, severity, stripe_checkout_session_id, registration_id::text AS registration_id,
       created_at, resolved_at, resolved_by, resolution_note
FROM reconciliation_items
WHERE action = 'manual_review' AND resolved_at IS NOT NULL AND NOT dry_run
ORDER BY resolved_at DESC, id DESC
LIMIT :limit
