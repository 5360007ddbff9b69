-- What the PostgreSQL restart scenarios (devharness/scenarios/postgres_restarts.py) set up
-- and count.

-- name: add_old_completed_events
-- :n completed events created :days_ago days ago, for cleanup to archive.
INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
                            created_at, processed_at, updated_at, outcome)
SELECT :prefix || g, 'checkout.session.completed', 'completed',
       jsonb_build_object('id', :prefix || g, 'type', 'checkout.session.completed'), 1,
       now() - make_interval(days => :days_ago) + g * interval '1 second',
       now() - make_interval(days => :days_ago) + g * interval '1 second', now(), 'ignored'
FROM generate_series(1, :n) AS g

-- name: archive_counts
-- Where the scenario's events are: still live, archived, archived distinct ids.
SELECT (SELECT count(*) FROM webhook_events WHERE stripe_event_id LIKE :prefix || '%') AS live,
       (SELECT count(*) FROM webhook_events_archive WHERE stripe_event_id LIKE :prefix || '%') AS archived,
       (SELECT count(DISTINCT stripe_event_id) FROM webhook_events_archive
         WHERE stripe_event_id LIKE :prefix || '%') AS archived_distinct

-- name: completed_count
-- How many of these events are completed.
SELECT count(*) FROM webhook_events
WHERE stripe_event_id = ANY(CAST(:ids AS text[])) AND processing_status = 'completed'

-- name: sweep_run_statuses
-- The sweep_runs rows, oldest first: their status and error.
SELECT status, error FROM sweep_runs ORDER BY id

-- name: reconciliation_run_statuses
-- The reconciliation_runs rows, oldest first: their status and error.
SELECT status, error FROM reconciliation_runs ORDER BY id
