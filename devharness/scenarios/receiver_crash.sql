-- What the receiver-crash scenario (devharness/scenarios/receiver_crash.py) holds and counts.

-- name: lock_registrations
-- Hold these registrations' rows (FOR UPDATE) so the attempts that apply them wait,
-- mid-delivery, inside PostgreSQL.
SELECT id FROM registrations WHERE id = ANY(CAST(:ids AS uuid[])) FOR UPDATE

-- name: processing_events
-- How many of these events are left 'processing'.
SELECT count(*) FROM webhook_events
WHERE stripe_event_id = ANY(CAST(:ids AS text[])) AND processing_status = 'processing'

-- name: held_attempts
-- How many of these events have an attempt that holds the liveness lock right now.
SELECT count(*) FROM webhook_event_attempts AS a
WHERE a.stripe_event_id = ANY(CAST(:ids AS text[])) AND a.outcome = 'processing' AND a.holds_lock
  AND public.webhook_event_lock_held(a.stripe_event_id)
