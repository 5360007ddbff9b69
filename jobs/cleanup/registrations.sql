-- Step 2 of cleanup (jobs/cleanup/registrations.py): stale pending registrations that
-- Stripe confirms were never paid move to registrations_archive with the reason.

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
-- How many pending registrations are older than the cutoff (the step's progress total).
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
