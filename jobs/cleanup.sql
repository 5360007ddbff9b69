-- name: count_old_events
-- Events created before the cutoff, by what cleanup does with them.
SELECT count(*) FILTER (WHERE processing_status = 'completed') AS completed,
       count(*) FILTER (WHERE processing_status = 'failed') AS failed,
       count(*) FILTER (WHERE processing_status IN ('pending', 'processing')) AS open
FROM webhook_events
WHERE created_at < :cutoff

-- name: archive_event_batch
-- Move one batch of old completed events to the archive in one short statement. Rows a
-- handler holds locked are skipped (SKIP LOCKED) rather than waited for; a row leaves
-- webhook_events only if its archive copy was written by this same statement, and rows the
-- archive already knows (same id or event id) are left alone so no batch repeats forever.
-- :resume_from is the previous batch's newest created_at: each batch starts where the last
-- one ended instead of walking again over the index entries of rows already moved.
-- Every column of webhook_events is copied (a test fails when one is added but not here).
WITH batch AS (
    SELECT e.id
    FROM webhook_events e
    WHERE e.processing_status = 'completed'
      AND e.created_at < :cutoff
      AND e.created_at >= :resume_from
      AND NOT EXISTS (SELECT 1 FROM webhook_events_archive a WHERE a.id = e.id)
      AND NOT EXISTS (SELECT 1 FROM webhook_events_archive a WHERE a.stripe_event_id = e.stripe_event_id)
    ORDER BY e.created_at
    LIMIT :batch_size
    FOR UPDATE SKIP LOCKED
), archived AS (
    INSERT INTO webhook_events_archive (
        id, stripe_event_id, event_type, processing_status, payload, error_message, attempts,
        created_at, processed_at, processing_duration_ms, stripe_created_at, livemode,
        processing_started_at, error_category, error_details, updated_at, outcome, registration_id,
        archived_at, cleanup_run_id)
    SELECT e.id, e.stripe_event_id, e.event_type, e.processing_status, e.payload, e.error_message,
           e.attempts, e.created_at, e.processed_at, e.processing_duration_ms, e.stripe_created_at,
           e.livemode, e.processing_started_at, e.error_category, e.error_details, e.updated_at,
           e.outcome, e.registration_id, :archived_at, :run_id
    FROM webhook_events e JOIN batch ON batch.id = e.id
    ON CONFLICT DO NOTHING
    RETURNING id
), moved AS (
    -- = ANY(ARRAY(...)) keeps this a primary-key lookup; a join here may be planned as a
    -- scan of the whole table for every batch.
    DELETE FROM webhook_events e WHERE e.id = ANY (ARRAY(SELECT id FROM archived))
    RETURNING e.created_at
)
SELECT count(*) AS moved, max(created_at) AS last_created_at FROM moved

-- name: stale_pending_page
-- The next page of stale pending registrations, oldest first (keyset on created_at, id).
-- row_version fingerprints the whole row, so the archive step can tell it is unchanged.
SELECT r.id, r.stripe_checkout_session_id, r.created_at, md5(to_jsonb(r)::text) AS row_version
FROM registrations r
WHERE r.processing_status = 'pending'
  AND r.created_at < :cutoff
  AND (r.created_at, r.id) > (:after_created_at, CAST(:after_id AS uuid))
ORDER BY r.created_at, r.id
LIMIT :page_size

-- name: count_stale_pending
SELECT count(*) FROM registrations WHERE processing_status = 'pending' AND created_at < :cutoff

-- name: canary_session
-- A session Stripe must know if STRIPE_API_KEY belongs to the app's Stripe account: the
-- latest completed registration's.
SELECT stripe_checkout_session_id
FROM registrations
WHERE processing_status = 'completed' AND stripe_checkout_session_id IS NOT NULL
ORDER BY created_at DESC
LIMIT 1

-- name: archive_registrations
-- Move the decided rows to the archive with their reason, but only those still pending and
-- unchanged since Stripe was asked: a webhook or the app touching a row meanwhile wins.
-- A registration archived before (restored by a person, then stale again) gets its archive
-- row refreshed.
WITH decided AS (
    SELECT *
    FROM jsonb_to_recordset(CAST(:decisions AS jsonb))
        AS d(id uuid, row_version text, reason text, session_status text, payment_status text)
), moved AS (
    DELETE FROM registrations r USING decided d
    WHERE r.id = d.id
      AND r.processing_status = 'pending'
      AND md5(to_jsonb(r)::text) = d.row_version
    RETURNING r.id, r.stripe_checkout_session_id, r.email, r.processing_status, r.amount_total,
              r.currency, r.created_at, r.completed_at, to_jsonb(r) AS row_data,
              d.reason, d.session_status, d.payment_status
)
INSERT INTO registrations_archive (
    id, stripe_checkout_session_id, email, processing_status, amount_total, currency,
    created_at, completed_at, archived_at, archive_reason, stripe_session_status,
    stripe_payment_status, cleanup_run_id, row_data)
SELECT id, stripe_checkout_session_id, email, processing_status, amount_total, currency,
       created_at, completed_at, :archived_at, reason, session_status, payment_status,
       :run_id, row_data
FROM moved
ON CONFLICT (id) DO UPDATE SET
    stripe_checkout_session_id = EXCLUDED.stripe_checkout_session_id, email = EXCLUDED.email,
    processing_status = EXCLUDED.processing_status, amount_total = EXCLUDED.amount_total,
    currency = EXCLUDED.currency, created_at = EXCLUDED.created_at,
    completed_at = EXCLUDED.completed_at, archived_at = EXCLUDED.archived_at,
    archive_reason = EXCLUDED.archive_reason, stripe_session_status = EXCLUDED.stripe_session_status,
    stripe_payment_status = EXCLUDED.stripe_payment_status,
    cleanup_run_id = EXCLUDED.cleanup_run_id, row_data = EXCLUDED.row_data
RETURNING id

-- name: start_run
INSERT INTO cleanup_runs (status, trigger, dry_run, pending_days, events_days, pending_cutoff,
                          events_cutoff, registrations_skipped, started_at)
VALUES ('running', :trigger, :dry_run, :pending_days, :events_days, :pending_cutoff,
        :events_cutoff, :registrations_skipped, :started_at)
RETURNING id

-- name: update_run
-- Counters as they stand; called after every batch so the Health page shows progress.
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
