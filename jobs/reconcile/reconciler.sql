-- Statements of the reconciliation job (jobs/reconcile/reconciler.py), loaded through core.sql.
-- Completing a paid registration is core/checkout.sql's complete_registration (shared with
-- the receiver); the review queue is read with the dashboard's queries/reconciliation.sql.

-- name: count_window_registrations
-- local_registrations_found: registrations created in the window.
SELECT count(*) FROM registrations
WHERE created_at >= :window_start AND created_at <= :window_end

-- name: registrations_for_sessions
-- The registrations a chunk of sessions points at, by session id or by client_reference_id,
-- wherever they fall in time (a registration made just before the window, paid inside it).
SELECT id::text AS id, stripe_checkout_session_id, email, processing_status, amount_total,
       currency, created_at, completed_at
FROM registrations
WHERE stripe_checkout_session_id = ANY(CAST(:session_ids AS text[]))
   OR id = ANY(CAST(:registration_ids AS uuid[]))

-- name: registrations_by_id
-- The registrations with these ids (check_registrations: the stale ones cleanup hands over).
SELECT id::text AS id, stripe_checkout_session_id, email, processing_status, amount_total,
       currency, created_at, completed_at
FROM registrations
WHERE id = ANY(CAST(:registration_ids AS uuid[]))

-- name: registration_for_update
-- The row as it is now, locked until the fix's transaction ends.
SELECT id::text AS id, stripe_checkout_session_id, email, processing_status, amount_total,
       currency, created_at, completed_at
FROM registrations
WHERE id = CAST(:registration_id AS uuid)
FOR UPDATE

-- name: completed_window_registrations
-- The window's completed registrations in id order, one page after :after_id (keyset
-- paging keeps each read short however large the window).
SELECT id::text AS id, stripe_checkout_session_id, email, processing_status, amount_total,
       currency, created_at, completed_at
FROM registrations
WHERE created_at >= :window_start AND created_at <= :window_end
  AND processing_status = 'completed'
  AND id > CAST(:after_id AS uuid)
ORDER BY id
LIMIT :page_size

-- name: expire_pending_registration
-- Auto-fix expired_but_pending. Only a row still pending that records this very session
-- changes: one matched by client_reference_id alone may have another attempt open or paid.
UPDATE registrations
SET processing_status = 'expired',
    updated_at = :now
WHERE id = CAST(:registration_id AS uuid)
  AND processing_status = 'pending'
  AND stripe_checkout_session_id = :session_id
RETURNING id

-- name: record_item
-- One item per mismatch. A manual item that is already open gets its last-seen fields
-- updated instead of a second row (the partial unique index); one a person already
-- resolved for the same kind, session and registration is not reopened (no row returned).
INSERT INTO reconciliation_items (
    run_id, kind, stripe_checkout_session_id, registration_id, action, severity, dry_run,
    details, created_at, resolved_at, resolved_by, resolution_note, last_seen_run_id, last_seen_at)
SELECT :run_id, CAST(:kind AS text), CAST(:session_id AS text), CAST(:registration_id AS uuid),
       CAST(:action AS text), :severity, :dry_run, CAST(:details AS jsonb), :now,
       CAST(:resolved_at AS timestamptz), CAST(:resolved_by AS text),
       CAST(:resolution_note AS text), :run_id, :now
WHERE NOT (CAST(:action AS text) = 'manual_review' AND EXISTS (
    SELECT 1 FROM reconciliation_items done
    WHERE done.kind = CAST(:kind AS text)
      AND coalesce(done.stripe_checkout_session_id, '') = coalesce(CAST(:session_id AS text), '')
      AND coalesce(done.registration_id::text, '') = coalesce(CAST(:registration_id AS text), '')
      AND done.action = 'manual_review' AND done.resolved_at IS NOT NULL AND NOT done.dry_run))
ON CONFLICT (kind, coalesce(stripe_checkout_session_id, ''), coalesce(registration_id::text, ''))
    WHERE action = 'manual_review' AND resolved_at IS NULL AND NOT dry_run
DO UPDATE SET last_seen_run_id = EXCLUDED.last_seen_run_id, last_seen_at = EXCLUDED.last_seen_at
RETURNING id, (xmax = 0) AS inserted

-- name: start_run
-- A new run, 'running' until finish_run; its id is the items' run_id.
INSERT INTO reconciliation_runs (status, trigger, lookback_days, dry_run, window_start,
                                 window_end, started_at, job_run_id)
VALUES ('running', :trigger, :lookback_days, :dry_run, :window_start, :window_end,
        :started_at, :job_run_id)
RETURNING id

-- name: update_progress
-- Written after every chunk in its own short transaction, so the dashboard can show a
-- running reconciliation's progress.
UPDATE reconciliation_runs
SET pages_read = :pages_read, sessions_checked = :sessions_checked,
    stripe_requests = :stripe_requests, stripe_payments_found = :stripe_payments_found,
    local_registrations_found = :local_registrations_found,
    mismatches_detected = :mismatches_detected, auto_fixed_count = :auto_fixed_count,
    manual_review_needed = :manual_review_needed,
    already_resolved_count = :already_resolved_count,
    fixes_superseded_count = :fixes_superseded_count
WHERE id = :run_id

-- name: finish_run
-- The run's outcome. :duration_ms is measured by the job on a monotonic clock (not the wall
-- clock minus the run's started_at, which is the caller's `now` and may be far in the past).
UPDATE reconciliation_runs
SET status = :status, finished_at = :finished_at, error = :error, duration_ms = :duration_ms
WHERE id = :run_id

-- name: count_open_review_items
-- Open manual review items (the run's exit code 3 while any is open).
SELECT count(*) FROM reconciliation_items
WHERE action = 'manual_review' AND resolved_at IS NULL AND NOT dry_run
