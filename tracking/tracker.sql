-- The tracking functions of migrations/functions/tracking.sql, as the Python tracker calls them.

-- name: begin_event
-- Record a delivery and get this caller's decision (process, skip_duplicate, retry_later).
SELECT decision, attempt, previous_status
FROM public.webhook_event_begin(
    CAST(:stripe_event_id AS text), CAST(:event_type AS text), CAST(:payload AS jsonb),
    CAST(:stripe_created_at AS timestamptz), CAST(:livemode AS boolean),
    CAST(:stale_after AS interval), CAST(:source AS text), CAST(:raw_payload AS text))

-- name: complete_event
-- Mark this attempt completed; false when the attempt no longer owns the event.
SELECT public.webhook_event_complete(
    CAST(:stripe_event_id AS text), CAST(:outcome AS text),
    CAST(:registration_id AS uuid), CAST(:attempt AS integer))

-- name: fail_event
-- Mark this attempt failed with its error and the classifier's verdict (the function plans
-- the next retry); false when the attempt no longer owns the event.
SELECT public.webhook_event_fail(
    CAST(:stripe_event_id AS text), CAST(:error_message AS text),
    CAST(:error_details AS jsonb), CAST(:error_category AS text), CAST(:attempt AS integer),
    CAST(:retryable AS boolean))

-- name: tracking_ready
-- True when the tracking functions exist (the migrations have been applied).
SELECT to_regprocedure('public.webhook_event_begin(text, text, jsonb, timestamptz, boolean, interval, text, text)') IS NOT NULL
   AND to_regprocedure('public.webhook_event_complete(text, text, uuid, integer)') IS NOT NULL
   AND to_regprocedure('public.webhook_event_fail(text, text, jsonb, text, integer, boolean)') IS NOT NULL
   AND to_regprocedure('public.webhook_event_lock(text)') IS NOT NULL
   AND to_regprocedure('public.webhook_event_hold(text, integer)') IS NOT NULL
   AND to_regprocedure('public.webhook_event_release(text)') IS NOT NULL
   AS ready

-- name: lock_event
-- Take the event's liveness lock for this session if free, before begin_event on the same
-- connection (migrations/functions/tracking.sql): the attempt begin opens is then marked as
-- holding it.
SELECT public.webhook_event_lock(CAST(:stripe_event_id AS text))

-- name: hold_event
-- Take the event's liveness lock on the connection doing the work
-- (migrations/functions/tracking.sql): a
-- re-delivery takes the event over at once if this session ends. False: not held.
SELECT public.webhook_event_hold(CAST(:stripe_event_id AS text), CAST(:attempt AS integer))

-- name: release_event
-- Release the event's liveness lock if this session holds it.
SELECT public.webhook_event_release(CAST(:stripe_event_id AS text))

-- name: claim_event
-- lock_event and begin_event in one statement (one round trip, run outside a transaction so
-- it commits by itself): the lock is taken first (begin_event's event id depends on it), so
-- the attempt opened is marked as holding it. When the decision is not 'process' the lock is
-- given back in the same statement; nothing was written then, so no other delivery can see
-- the event free before this one's answer is decided.
SELECT b.decision, b.attempt, b.previous_status, l.locked AND b.decision = 'process' AS locked,
       CASE WHEN l.locked AND b.decision <> 'process'
            THEN public.webhook_event_release(CAST(:stripe_event_id AS text)) END AS released
FROM public.webhook_event_lock(CAST(:stripe_event_id AS text)) AS l(locked)
CROSS JOIN LATERAL public.webhook_event_begin(
    CASE WHEN l.locked IS NOT NULL THEN CAST(:stripe_event_id AS text) END, CAST(:event_type AS text),
    CAST(:payload AS jsonb), CAST(:stripe_created_at AS timestamptz), CAST(:livemode AS boolean),
    CAST(:stale_after AS interval), CAST(:source AS text), CAST(:raw_payload AS text)) AS b

-- name: complete_release_event
-- complete_event and release_event in one statement, in the attempt's transaction: the lock
-- goes before the commit, but the row complete_event updated stays locked until then, so a
-- delivery that sees the lock free waits for this transaction and then finds the event
-- completed (or, rolled back, still this attempt's to take over: the worker is answering an
-- error anyway). The release is evaluated after the completion (it depends on it).
SELECT c.completed, public.webhook_event_release(CASE WHEN c.completed IS NOT NULL
                                                      THEN CAST(:stripe_event_id AS text) END) AS released
FROM public.webhook_event_complete(
    CAST(:stripe_event_id AS text), CAST(:outcome AS text),
    CAST(:registration_id AS uuid), CAST(:attempt AS integer)) AS c(completed)

-- name: fail_release_event
-- fail_event and release_event in one statement (run outside a transaction: it commits by
-- itself), the release after the failure is recorded.
SELECT f.failed, public.webhook_event_release(CASE WHEN f.failed IS NOT NULL
                                                   THEN CAST(:stripe_event_id AS text) END) AS released
FROM public.webhook_event_fail(
    CAST(:stripe_event_id AS text), CAST(:error_message AS text),
    CAST(:error_details AS jsonb), CAST(:error_category AS text), CAST(:attempt AS integer),
    CAST(:retryable AS boolean)) AS f(failed)
