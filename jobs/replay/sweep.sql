-- name: start_run
-- A sweep begins: its row, 'running' until it ends.
INSERT INTO sweep_runs (status, trigger, dry_run, replay, lookback_hours, window_start,
                        window_end, started_at, job_run_id)
VALUES ('running', :trigger, :dry_run, :replay, :lookback_hours, :window_start, :window_end,
        :started_at, :job_run_id)
RETURNING id

-- name: finish_run
-- A sweep ends (completed, needs_review or failed) with its counts.
UPDATE sweep_runs
SET status = :status, finished_at = :finished_at, duration_ms = :duration_ms,
    stripe_events_found = :stripe_events_found, undelivered_found = :undelivered_found,
    missing_found = :missing_found, delivered_unrecorded = :delivered_unrecorded,
    missing_new = :missing_new, replayed = :replayed, recovered = :recovered,
    still_missing = :still_missing, stripe_requests = :stripe_requests,
    stripe_pages = :stripe_pages, details = CAST(:details AS jsonb), error = :error
WHERE id = :id

-- name: unrecorded_among
-- Which of the listed event ids have no row in webhook_events nor in its archive: index
-- probes of the live table for the whole batch, then of the archive for the few absent
-- ones only (materialized, so the archive is never hashed whole, however large it grows).
WITH absent AS MATERIALIZED (
    SELECT listed.stripe_event_id
    FROM unnest(CAST(:ids AS text[])) AS listed (stripe_event_id)
    WHERE NOT EXISTS (SELECT 1 FROM webhook_events w WHERE w.stripe_event_id = listed.stripe_event_id)
)
SELECT absent.stripe_event_id
FROM absent
WHERE NOT EXISTS (SELECT 1 FROM webhook_events_archive a WHERE a.stripe_event_id = absent.stripe_event_id)

-- name: record_missing
-- Record (or see again) missed events, given as a JSON array of summaries; a known one only
-- has what Stripe now says refreshed. Returns each id and whether it was new.
INSERT INTO missed_events AS m (
    stripe_event_id, event_type, stripe_created_at, livemode, status, found_at, sweep_run_id,
    last_seen_at, last_sweep_run_id, pending_webhooks, stripe_says_delivered, object_id,
    object_type, amount, currency, retry_deadline, retention_deadline, payload)
SELECT e.stripe_event_id, e.event_type, to_timestamp(e.created), e.livemode, 'missing',
       CAST(:now AS timestamptz), :run_id, CAST(:now AS timestamptz), :run_id,
       e.pending_webhooks, e.delivered, e.object_id, e.object_type, e.amount, e.currency,
       to_timestamp(e.created) + interval '3 days', to_timestamp(e.created) + interval '30 days',
       e.payload
FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS e (
    stripe_event_id text, event_type text, created bigint, livemode boolean,
    pending_webhooks integer, delivered boolean, object_id text, object_type text,
    amount bigint, currency text, payload jsonb)
ON CONFLICT (stripe_event_id) DO UPDATE
SET last_seen_at = excluded.last_seen_at, last_sweep_run_id = excluded.last_sweep_run_id,
    pending_webhooks = excluded.pending_webhooks,
    stripe_says_delivered = excluded.stripe_says_delivered
RETURNING m.stripe_event_id, (m.found_at = CAST(:now AS timestamptz) AND m.sweep_run_id = :run_id) AS is_new

-- name: refresh_statuses
-- Open missed events whose row has appeared since: recovered when it is completed, arrived
-- when it is there but not completed (failed or in progress: the failure policy owns it).
WITH seen AS (
    SELECT m.id, coalesce(w.processing_status, a.processing_status) AS processing_status
    FROM missed_events m
    LEFT JOIN webhook_events w ON w.stripe_event_id = m.stripe_event_id
    LEFT JOIN webhook_events_archive a ON a.stripe_event_id = m.stripe_event_id
    WHERE m.status IN ('missing', 'replayed', 'arrived')
      AND (w.stripe_event_id IS NOT NULL OR a.stripe_event_id IS NOT NULL)
)
UPDATE missed_events m
SET status = CASE WHEN seen.processing_status = 'completed' THEN 'recovered' ELSE 'arrived' END,
    recovered_at = CASE WHEN seen.processing_status = 'completed' THEN CAST(:now AS timestamptz) END
FROM seen
WHERE m.id = seen.id
  AND m.status <> CASE WHEN seen.processing_status = 'completed' THEN 'recovered' ELSE 'arrived' END
RETURNING m.status

-- name: open_to_replay
-- Missed events still without a row, money at risk first (largest amount), then oldest.
SELECT id, stripe_event_id, event_type, payload
FROM missed_events
WHERE status IN ('missing', 'replayed')
ORDER BY amount DESC NULLS LAST, stripe_created_at, id
LIMIT :limit

-- name: mark_replayed
-- One replay attempt's outcome: delivered (the endpoint answered 2xx) or the error.
UPDATE missed_events
SET replay_attempts = replay_attempts + 1,
    replayed_at = CASE WHEN CAST(:delivered AS boolean) THEN CAST(:now AS timestamptz) ELSE replayed_at END,
    status = CASE WHEN CAST(:delivered AS boolean) AND status = 'missing' THEN 'replayed' ELSE status END,
    last_replay_error = :error
WHERE id = :id

-- name: still_missing
-- Missed events that still have no completed row (what keeps the exit code at 3).
SELECT count(*) FROM missed_events WHERE status IN ('missing', 'replayed')
