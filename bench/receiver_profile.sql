-- Statements of bench/receiver_profile.py (python bench/receiver_load.py --round-trips).

-- name: track_functions
-- Time every PL/pgSQL and SQL function in this database's sessions from now on.
SELECT set_config('track_functions', 'all', false)

-- name: database_track_functions
-- The same for every later session of the database (the receiver's).
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET track_functions = %L', current_database(), 'all'); END $$

-- name: function_times
-- Time spent in the tracking and trigger functions since the statistics were reset.
SELECT funcname AS function, calls, round(CAST(total_time AS numeric), 1) AS total_ms,
       round(CAST(self_time AS numeric), 1) AS self_ms
FROM pg_stat_user_functions
WHERE schemaname = 'public'
ORDER BY self_time DESC
LIMIT 20

-- name: reset_function_times
SELECT pg_stat_reset()

-- name: insert_registration
INSERT INTO registrations (id, email, created_at)
VALUES (CAST(:id AS uuid), :email, now())

-- name: explain_begin_insert
-- What webhook_event_begin writes for a new event, with the triggers each write fires.
EXPLAIN (ANALYZE, COSTS OFF, TIMING ON)
INSERT INTO public.webhook_events AS e
    (stripe_event_id, event_type, processing_status, payload, attempts, livemode,
     processing_started_at, updated_at)
VALUES (:id, 'payment_intent.created', 'processing', '{}', 1, false, clock_timestamp(), clock_timestamp())
ON CONFLICT (stripe_event_id) DO NOTHING

-- name: explain_begin_attempt
EXPLAIN (ANALYZE, COSTS OFF, TIMING ON)
INSERT INTO public.webhook_event_attempts (stripe_event_id, event_type, attempt, source, started_at, holds_lock)
VALUES (:id, 'payment_intent.created', 1, 'delivery', clock_timestamp(), true)
ON CONFLICT ON CONSTRAINT webhook_event_attempts_event_attempt_key DO NOTHING

-- name: explain_complete_update
-- What webhook_event_complete writes.
EXPLAIN (ANALYZE, COSTS OFF, TIMING ON)
UPDATE public.webhook_events AS e
   SET processing_status = 'completed', processed_at = clock_timestamp(),
       processing_duration_ms = 3, outcome = 'ignored', error_message = NULL, error_category = NULL,
       error_details = NULL, recovery_action = NULL, alert_level = NULL, next_retry_at = NULL,
       updated_at = clock_timestamp()
 WHERE e.stripe_event_id = :id AND e.processing_status = 'processing' AND e.attempts = 1

-- name: explain_complete_attempt
EXPLAIN (ANALYZE, COSTS OFF, TIMING ON)
UPDATE public.webhook_event_attempts AS a
   SET outcome = 'completed', finished_at = clock_timestamp(), duration_ms = 3
 WHERE a.stripe_event_id = :id AND a.attempt = 1

-- name: explain_begin_function
-- The whole of webhook_event_begin and webhook_event_complete for a new event.
EXPLAIN (ANALYZE, COSTS OFF, TIMING ON)
SELECT * FROM public.webhook_event_begin(CAST(:id AS text), 'payment_intent.created', CAST('{}' AS jsonb))

-- name: explain_complete_function
EXPLAIN (ANALYZE, COSTS OFF, TIMING ON)
SELECT public.webhook_event_complete(CAST(:id AS text), 'ignored', NULL, 1)
