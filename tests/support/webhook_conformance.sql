-- What the webhook conformance suite (tests/support/webhook_conformance.py) sets up and reads.

-- name: add_pending_registration
-- A registration waiting for its payment, as the app writes it before Checkout.
INSERT INTO registrations (id, email, processing_status, created_at)
VALUES (CAST(:id AS uuid), 'someone@example.com', 'pending', now())

-- name: lock_registration
-- Hold the registration's row so the attempt that applies it waits inside PostgreSQL.
SELECT id FROM registrations WHERE id = CAST(:id AS uuid) FOR UPDATE

-- name: backend_waiting_on_registrations
-- The receiver's backend waiting for the held registration row (its statement names the table).
SELECT pid FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query ILIKE '%registrations%' AND pid <> pg_backend_pid()
LIMIT 1

-- name: terminate_backend
-- What a failover or a restart does to the attempt's session.
SELECT pg_terminate_backend(CAST(:pid AS integer))

-- name: cancel_backend
-- What statement_timeout does to the attempt's statement (SQLSTATE 57014).
SELECT pg_cancel_backend(CAST(:pid AS integer))

-- name: event_rows
-- The event's rows (0 or 1) as the suite compares them.
SELECT processing_status, attempts, error_category, outcome, next_retry_at IS NOT NULL AS retry_planned,
       raw_payload IS NOT NULL AS raw_kept
FROM webhook_events WHERE stripe_event_id = :id

-- name: event_sources
-- Who ran each attempt of the event, in order, and how each ended.
SELECT source, outcome FROM webhook_event_attempts WHERE stripe_event_id = :id ORDER BY attempt

-- name: registration_status
SELECT processing_status FROM registrations WHERE id = CAST(:id AS uuid)

-- name: all_events
-- Every event recorded, for the cases whose id the receiver derives from the body.
SELECT stripe_event_id FROM webhook_events ORDER BY id
