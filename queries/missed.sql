-- name: missed_events_open
-- Events Stripe sent that still have no completed row (whatever the window: a missed event
-- matters until it is recovered): how many, the oldest, and the last sweep.
SELECT count(*) FILTER (WHERE m.status IN ('missing', 'replayed')) AS open_events,
       min(m.stripe_created_at) FILTER (WHERE m.status IN ('missing', 'replayed')) AS oldest_at,
       min(m.retention_deadline) FILTER (WHERE m.status IN ('missing', 'replayed')) AS first_forgotten_at,
       (SELECT max(started_at) FROM sweep_runs WHERE status <> 'running') AS last_sweep_at
FROM missed_events m

-- name: missed_money_at_risk
-- Money at risk in the open missed events, per currency, largest first.
SELECT currency, sum(amount) AS amount, count(*) AS events
FROM missed_events
WHERE status IN ('missing', 'replayed') AND amount IS NOT NULL
GROUP BY currency
ORDER BY sum(amount) DESC, currency

-- name: missed_events_page
-- The missed events Stripe created in the window, newest first (the Events page's
-- "never arrived" filter).
SELECT stripe_event_id, event_type, status, stripe_created_at, amount, currency, object_id,
       stripe_says_delivered, found_at, replayed_at, recovered_at, replay_attempts,
       last_replay_error, retry_deadline, retention_deadline
FROM missed_events
WHERE stripe_created_at >= CAST(:start AS timestamptz) AND stripe_created_at < CAST(:end AS timestamptz)
ORDER BY stripe_created_at DESC, stripe_event_id
LIMIT :limit

-- name: sweep_history
-- The latest sweeps, newest first.
SELECT id, status, trigger, dry_run, replay, lookback_hours, started_at, duration_ms,
       stripe_events_found, undelivered_found, missing_found, delivered_unrecorded, missing_new,
       replayed, recovered, still_missing, stripe_requests, error
FROM sweep_runs
ORDER BY started_at DESC, id DESC
LIMIT :limit

-- name: missed_events_open_list
-- Open missed events (no completed row yet), money at risk first: what a replay would send.
SELECT stripe_event_id, event_type, amount, currency, stripe_created_at, status,
       stripe_says_delivered, replay_attempts, last_replay_error, retry_deadline, retention_deadline
FROM missed_events
WHERE status IN ('missing', 'replayed')
ORDER BY amount DESC NULLS LAST, stripe_created_at, id
LIMIT :limit

-- name: sweep_run
-- One sweep by id.
SELECT id, status, trigger, dry_run, replay, lookback_hours, started_at, duration_ms,
       stripe_events_found, undelivered_found, missing_found, delivered_unrecorded, missing_new,
       replayed, recovered, still_missing, stripe_requests, error
FROM sweep_runs
WHERE id = :run_id

-- name: sweep_progress
-- What the running sweep has done so far (its job_runs progress), if one runs.
SELECT started_at, trigger, progress
FROM job_runs
WHERE job = 'sweep' AND status = 'running'
ORDER BY started_at DESC
LIMIT 1
