-- Step 1 of cleanup (jobs/cleanup/events.py): old completed webhook events move to
-- webhook_events_archive in short batches.

-- name: batch_limits
-- Limits for the batch's own transaction: wait at most 5 s for a table lock (a migration
-- running, say), then fail rather than queue the handler's inserts behind it; no batch runs
-- longer than 2 minutes. set_config(..., true) is SET LOCAL: it ends with the transaction.
SELECT set_config('lock_timeout', '5s', true), set_config('statement_timeout', '120s', true)

-- name: count_old_events
-- Events created before the cutoff, by what cleanup does with them: completed ones move,
-- failed and still open ones stay.
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
-- Every column of webhook_events is copied (a test fails when one is added but not here),
-- except retry_claimed_until: a lease held while a re-delivery is in flight, meaningless
-- once the event is archived.
-- The moved events' rows of webhook_event_attempts are removed with them.
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
        recovery_action, alert_level, next_retry_at, raw_payload, archived_at, cleanup_run_id)
    SELECT e.id, e.stripe_event_id, e.event_type, e.processing_status, e.payload, e.error_message,
           e.attempts, e.created_at, e.processed_at, e.processing_duration_ms, e.stripe_created_at,
           e.livemode, e.processing_started_at, e.error_category, e.error_details, e.updated_at,
           e.outcome, e.registration_id, e.recovery_action, e.alert_level, e.next_retry_at,
           e.raw_payload, :archived_at, :run_id
    FROM webhook_events e JOIN batch ON batch.id = e.id
    ON CONFLICT DO NOTHING
    RETURNING id, stripe_event_id
), moved AS (
    -- = ANY(ARRAY(...)) keeps this a primary-key lookup; a join here may be planned as a
    -- scan of the whole table for every batch.
    DELETE FROM webhook_events e WHERE e.id = ANY (ARRAY(SELECT id FROM archived))
    RETURNING e.created_at
), attempts_removed AS (
    -- The archived events' attempt rows go with them, so webhook_event_attempts stays as
    -- lean as webhook_events (a unique-index lookup per event).
    DELETE FROM webhook_event_attempts a
    WHERE a.stripe_event_id = ANY (ARRAY(SELECT stripe_event_id FROM archived))
)
SELECT count(*) AS moved, max(created_at) AS last_created_at FROM moved
