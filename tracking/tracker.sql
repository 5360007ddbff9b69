-- The tracking functions of migrations/0010_tracking.sql, as the Python tracker calls them.

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
-- connection (migrations/0120): the attempt begin opens is then marked as holding it.
SELECT public.webhook_event_lock(CAST(:stripe_event_id AS text))

-- name: hold_event
-- Take the event's liveness lock on the connection doing the work (migrations/0120): a
-- re-delivery takes the event over at once if this session ends. False: not held.
SELECT public.webhook_event_hold(CAST(:stripe_event_id AS text), CAST(:attempt AS integer))

-- name: release_event
-- Release the event's liveness lock if this session holds it.
SELECT public.webhook_event_release(CAST(:stripe_event_id AS text))
