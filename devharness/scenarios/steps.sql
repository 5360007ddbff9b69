-- What the fault scenarios share (devharness/scenarios/steps.py): the deliveries, job runs,
-- Stripe objects and alerts they set up, and how they count what became of them.

-- name: add_pending_registration
-- A registration waiting for its payment, as the app writes it before Checkout.
INSERT INTO registrations (id, email, processing_status, created_at)
VALUES (CAST(:id AS uuid), :email, 'pending', now())

-- name: add_failed_event
-- An event whose attempt failed on a network error, its automatic retry due now.
INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
                            error_message, error_category, recovery_action, alert_level,
                            next_retry_at, processed_at)
VALUES (:id, :type, 'failed', CAST(:payload AS jsonb), 1, 'ConnectError: the app was down', 'network',
        'retry_with_backoff', 'warning', now() - interval '1 minute', now() - interval '2 minutes')

-- name: event_outcomes
-- Per event of the list: its rows, its status, and how many of its attempts completed.
SELECT ids.id AS stripe_event_id,
       (SELECT count(*) FROM webhook_events AS e WHERE e.stripe_event_id = ids.id) AS rows,
       (SELECT e.processing_status FROM webhook_events AS e WHERE e.stripe_event_id = ids.id) AS status,
       (SELECT count(*) FROM webhook_event_attempts AS a
         WHERE a.stripe_event_id = ids.id AND a.outcome = 'completed') AS completed_attempts
FROM unnest(CAST(:ids AS text[])) AS ids (id)

-- name: registration_states
-- Per registration of the list: its status and how many completed events name it.
SELECT r.id::text AS id, r.processing_status,
       (SELECT count(*) FROM webhook_events AS e
         WHERE e.registration_id = r.id AND e.processing_status = 'completed') AS completed_events
FROM registrations AS r
WHERE r.id = ANY(CAST(:ids AS uuid[]))

-- name: leaked_locks
-- How many liveness locks are held at all (none once every attempt has finished).
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND classid = 22341 AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())

-- name: job_runs_of
-- The runs of a job, oldest first.
SELECT id, status, error, finished_at FROM job_runs WHERE job = :job ORDER BY id

-- name: job_lock_held
-- True while some session holds the job's advisory lock (jobs/runtime.py's key).
SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                AND classid = 22344 AND objid = hashtext(:job)::oid)

-- name: running_job_runs
-- job_runs rows still 'running', of any job.
SELECT count(*) FROM job_runs WHERE status = 'running'

-- name: add_recorded_event
-- An event the app received and completed (the sweep must not count it as missed).
INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts, processed_at)
VALUES (:stripe_event_id, 'checkout.session.completed', 'completed', CAST('{}' AS jsonb), 1, now())

-- name: missed_counts
-- Missed events the sweep recorded among the scenario's ids (prefix), and how many distinct.
SELECT count(*) AS recorded, count(DISTINCT stripe_event_id) AS recorded_distinct
FROM missed_events WHERE stripe_event_id LIKE :prefix || '%'

-- name: add_pending_registration_with_session
-- A registration still pending although its Checkout Session was paid (a lost webhook).
INSERT INTO registrations (id, stripe_checkout_session_id, email, processing_status, amount_total, currency,
                           created_at)
VALUES (CAST(:id AS uuid), :session_id, 'someone@example.com', 'pending', 2500, 'eur', now() - interval '1 hour')

-- name: reconcile_fix_counts
-- Of these registrations: how many completed, and the auto-fix items recorded for them
-- (a fix applied twice shows as more items than registrations fixed).
SELECT (SELECT count(*) FROM registrations
        WHERE id = ANY(CAST(:ids AS uuid[])) AND processing_status = 'completed') AS completed,
       (SELECT count(*) FROM reconciliation_items
        WHERE registration_id = ANY(CAST(:ids AS uuid[])) AND action = 'auto_fixed' AND NOT dry_run) AS fixes,
       (SELECT count(DISTINCT registration_id) FROM reconciliation_items
        WHERE registration_id = ANY(CAST(:ids AS uuid[])) AND action = 'auto_fixed' AND NOT dry_run) AS fixed_distinct

-- name: fail_checkout_event
-- A checkout event whose handling failed, recorded through the tracking functions as a
-- handler does (a permanent error: no automatic retry).
SELECT webhook_event_fail(:id, 'registration not found')
FROM webhook_event_begin(:id, :type, CAST('{}' AS jsonb))

-- name: watchers_listening
-- Sessions listening for alert notifications (started watch processes).
SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN monitor_alerts%'
