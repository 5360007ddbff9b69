-- Statements of the reconciliation job (jobs/reconcile.py) and the review command
-- (jobs/review.py). Loaded by jobs.sql_files.

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

-- name: complete_pending_registration
-- Auto-fix paid_but_pending. Only a row still pending and still pointing at this session
-- (or at none yet) changes: a webhook that got there first wins.
UPDATE registrations
SET processing_status = 'completed',
    completed_at = coalesce(completed_at, :now),
    stripe_checkout_session_id = coalesce(stripe_checkout_session_id, :session_id),
    updated_at = :now
WHERE id = CAST(:registration_id AS uuid)
  AND processing_status = 'pending'
  AND (stripe_checkout_session_id IS NULL OR stripe_checkout_session_id = :session_id)
  AND NOT EXISTS (SELECT 1 FROM registrations other
                  WHERE other.stripe_checkout_session_id = :session_id
                    AND other.id <> CAST(:registration_id AS uuid))
RETURNING id

-- name: expire_pending_registration
-- Auto-fix expired_but_pending, under the same conditions as completing one.
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
UPDATE reconciliation_runs
SET status = :status, finished_at = :finished_at, error = :error,
    duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM (:finished_at - started_at)) * 1000)::int)
WHERE id = :run_id

-- name: count_open_review_items
SELECT count(*) FROM reconciliation_items
WHERE action = 'manual_review' AND resolved_at IS NULL AND NOT dry_run

-- name: open_review_items
-- The review queue, newest first.
SELECT i.id, i.kind, i.severity, i.stripe_checkout_session_id, i.registration_id::text AS registration_id,
       i.created_at, i.last_seen_at, i.run_id, i.details
FROM reconciliation_items i
WHERE i.action = 'manual_review' AND i.resolved_at IS NULL AND NOT i.dry_run
ORDER BY (i.severity = 'critical') DESC, i.created_at DESC, i.id DESC
LIMIT :limit

-- name: review_item
SELECT i.id, i.run_id, i.kind, i.action, i.severity, i.dry_run, i.stripe_checkout_session_id,
       i.registration_id::text AS registration_id, i.details, i.created_at, i.last_seen_at,
       i.last_seen_run_id, i.resolved_at, i.resolved_by, i.resolution_note
FROM reconciliation_items i
WHERE i.id = :item_id

-- name: resolve_item
-- Only an open manual item can be resolved, once; it stays in the table as history.
UPDATE reconciliation_items
SET resolved_at = :now, resolved_by = :resolved_by, resolution_note = :note
WHERE id = :item_id AND action = 'manual_review' AND resolved_at IS NULL AND NOT dry_run
RETURNING id
