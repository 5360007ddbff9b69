-- The retry job (jobs/replay/retry.py): which failed events to re-deliver, claiming them so two
-- retry processes deliver each event once, and what is left for a person.

-- name: due_events
-- Failed events whose automatic retry is due, and 'processing' events whose worker is gone
-- (its attempt held the event's liveness lock, migrations/functions/tracking.sql, and
-- nobody holds it now: a worker killed, or its database restarted, mid-attempt), not
-- claimed by another retry run and not tried by this one yet, oldest plan first.
SELECT e.stripe_event_id, e.event_type, e.error_category, e.created_at, e.next_retry_at
FROM webhook_events e
WHERE (   (e.processing_status = 'failed' AND e.next_retry_at <= CAST(:now AS timestamptz))
       OR (e.processing_status = 'processing'
           AND EXISTS (SELECT 1 FROM webhook_event_attempts a
                        WHERE a.stripe_event_id = e.stripe_event_id AND a.attempt = e.attempts
                          AND a.outcome = 'processing' AND a.holds_lock)
           AND NOT public.webhook_event_lock_held(e.stripe_event_id)))
  AND (CAST(:category AS text) IS NULL OR e.error_category = CAST(:category AS text))
  AND (e.retry_claimed_until IS NULL OR e.retry_claimed_until <= CAST(:now AS timestamptz))
  AND NOT (e.stripe_event_id = ANY (CAST(:exclude AS text[])))
ORDER BY e.next_retry_at NULLS FIRST, e.id
LIMIT CAST(:limit AS integer)

-- name: given_events
-- The events named on the command line, whatever their status (the job says why it skips one).
SELECT e.stripe_event_id, e.event_type, e.processing_status, e.error_category, e.created_at,
       e.next_retry_at, e.retry_claimed_until
FROM webhook_events e
WHERE e.stripe_event_id = ANY (CAST(:ids AS text[]))

-- name: claim_events
-- Claim failed events (and 'processing' ones whose worker is gone, as in due_events) for one
-- retry run until :until; an event completed, processing by a live worker, or claimed by
-- another run meanwhile is left out. Returns what to re-deliver.
WITH candidates AS (
    SELECT e.id
    FROM webhook_events e
    WHERE e.stripe_event_id = ANY (CAST(:ids AS text[]))
      AND (e.processing_status = 'failed'
           OR (e.processing_status = 'processing'
               AND EXISTS (SELECT 1 FROM webhook_event_attempts a
                            WHERE a.stripe_event_id = e.stripe_event_id AND a.attempt = e.attempts
                              AND a.outcome = 'processing' AND a.holds_lock)
               AND NOT public.webhook_event_lock_held(e.stripe_event_id)))
      AND (e.retry_claimed_until IS NULL OR e.retry_claimed_until <= CAST(:now AS timestamptz))
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_events e
SET retry_claimed_until = CAST(:until AS timestamptz)
FROM candidates c
WHERE e.id = c.id
RETURNING e.stripe_event_id, e.event_type, e.error_category, e.payload, e.raw_payload

-- name: release_events
-- Give back this run's claims (whatever became of the deliveries).
UPDATE webhook_events
SET retry_claimed_until = NULL
WHERE stripe_event_id = ANY (CAST(:ids AS text[]))
  AND retry_claimed_until = CAST(:until AS timestamptz)

-- name: remaining_failures
-- Failed events by category: how many wait for an automatic retry and how many need a person
-- (no retry planned), with the oldest of each.
SELECT e.error_category AS category,
       count(*) FILTER (WHERE e.next_retry_at IS NOT NULL) AS planned,
       count(*) FILTER (WHERE e.next_retry_at IS NULL) AS needs_person,
       min(e.next_retry_at) AS next_retry_at,
       min(e.created_at) FILTER (WHERE e.next_retry_at IS NULL) AS oldest_needs_person
FROM webhook_events e
WHERE e.processing_status = 'failed'
GROUP BY e.error_category
ORDER BY e.error_category
