-- Who is affected: the people behind the numbers, and events found by who they concern.
--
-- "Paid" is what the funnel counts as paid: a checkout.session.completed event with
-- payment_status 'paid', or a checkout.session.async_payment_succeeded event, recorded for
-- the registration's Checkout Session.

-- name: affected_registrations
-- Registrations that are not completed although a paid Checkout Session event was recorded
-- for their session (whenever it was paid), or that an open manual-review item of
-- reconciliation concerns: who, how much, the session, the newest paid event and the review
-- item; oldest first, at most :limit rows; total is how many there are in all. The first
-- kind is the set registrations_paid_unfinished (migrations/0179_baseline.sql; kept by the
-- triggers of migrations/functions/paid_unfinished.sql), read in its index's order, so a
-- page costs the same however many people are affected and however long the history.
WITH open_items AS (
    SELECT DISTINCT ON (i.registration_id) i.registration_id, i.id, i.kind
    FROM reconciliation_items i
    WHERE i.action = 'manual_review' AND i.resolved_at IS NULL AND NOT i.dry_run
      AND i.registration_id IS NOT NULL
    ORDER BY i.registration_id, i.created_at DESC
), reviewed_only AS (
    SELECT r.id AS registration_id, r.created_at AS registration_created_at
    FROM open_items o
    JOIN registrations r ON r.id = o.registration_id
    WHERE r.processing_status <> 'completed'
      AND NOT EXISTS (SELECT 1 FROM registrations_paid_unfinished u WHERE u.registration_id = o.registration_id)
), page AS (
    SELECT registration_id, registration_created_at
    FROM (
        (SELECT u.registration_id, u.registration_created_at
         FROM registrations_paid_unfinished u
         ORDER BY u.registration_created_at, u.registration_id
         LIMIT :limit)
        UNION ALL
        SELECT registration_id, registration_created_at FROM reviewed_only
    ) AS both_kinds
    ORDER BY registration_created_at, registration_id
    LIMIT :limit
)
SELECT CAST(r.id AS text)          AS registration_id,
       r.email,
       r.amount_total,
       r.currency,
       r.stripe_checkout_session_id,
       r.processing_status,
       r.created_at,
       paid.stripe_event_id        AS paid_event_id,
       paid.created_at             AS paid_at,
       coalesce(paid.livemode, r.stripe_checkout_session_id LIKE 'cs\_live\_%') AS livemode,
       open_items.id               AS review_item_id,
       open_items.kind             AS review_kind,
       (SELECT count(*) FROM registrations_paid_unfinished)
           + (SELECT count(*) FROM reviewed_only) AS total
FROM page
JOIN registrations r ON r.id = page.registration_id
LEFT JOIN LATERAL (
    SELECT e.stripe_event_id, e.created_at, e.livemode
    FROM webhook_events e
    WHERE e.payload -> 'data' -> 'object' ->> 'id' = r.stripe_checkout_session_id
      AND e.event_type IN ('checkout.session.completed', 'checkout.session.async_payment_succeeded')
      AND (e.event_type = 'checkout.session.async_payment_succeeded'
           OR e.payload -> 'data' -> 'object' ->> 'payment_status' = 'paid')
    ORDER BY e.created_at DESC
    LIMIT 1
) paid ON true
LEFT JOIN open_items ON open_items.registration_id = r.id
ORDER BY r.created_at, r.id

-- name: events_of_customer_page
-- One page of the events received in [start, end) that concern :search, newest first: an
-- e-mail address (the session's customer e-mail, any case), a Checkout Session id, or a
-- registration id (the row the handler touched, or the session's client_reference_id or
-- metadata.registration_id). Same status and type filters as events_page.
SELECT stripe_event_id, event_type, processing_status, attempts, created_at, processed_at,
       processing_duration_ms, error_message, livemode
FROM webhook_events
WHERE created_at >= :start AND created_at < :end
  AND (cardinality(CAST(:statuses AS text[])) = 0
       OR processing_status = ANY (CAST(:statuses AS text[])))
  AND (cardinality(CAST(:event_types AS text[])) = 0
       OR event_type = ANY (CAST(:event_types AS text[])))
  AND (lower(payload -> 'data' -> 'object' -> 'customer_details' ->> 'email') = lower(CAST(:search AS text))
       OR lower(payload -> 'data' -> 'object' ->> 'customer_email') = lower(CAST(:search AS text))
       OR payload -> 'data' -> 'object' ->> 'id' = CAST(:search AS text)
       OR CAST(registration_id AS text) = lower(CAST(:search AS text))
       OR payload -> 'data' -> 'object' ->> 'client_reference_id' = CAST(:search AS text)
       OR payload -> 'data' -> 'object' -> 'metadata' ->> 'registration_id' = CAST(:search AS text))
ORDER BY created_at DESC, id DESC
LIMIT :limit OFFSET :offset

-- name: events_of_customer_count
-- How many events received in [start, end) concern :search (see events_of_customer_page).
SELECT count(*) AS events
FROM webhook_events
WHERE created_at >= :start AND created_at < :end
  AND (cardinality(CAST(:statuses AS text[])) = 0
       OR processing_status = ANY (CAST(:statuses AS text[])))
  AND (cardinality(CAST(:event_types AS text[])) = 0
       OR event_type = ANY (CAST(:event_types AS text[])))
  AND (lower(payload -> 'data' -> 'object' -> 'customer_details' ->> 'email') = lower(CAST(:search AS text))
       OR lower(payload -> 'data' -> 'object' ->> 'customer_email') = lower(CAST(:search AS text))
       OR payload -> 'data' -> 'object' ->> 'id' = CAST(:search AS text)
       OR CAST(registration_id AS text) = lower(CAST(:search AS text))
       OR payload -> 'data' -> 'object' ->> 'client_reference_id' = CAST(:search AS text)
       OR payload -> 'data' -> 'object' -> 'metadata' ->> 'registration_id' = CAST(:search AS text))

-- name: registration_of_event
-- The registration an event touched: the row the handler recorded on the event, else the
-- one with the event's Checkout Session, else the one its client_reference_id names; live
-- rows before archived ones. Each is one index probe (an OR across the three columns would
-- read the whole table).
WITH event AS (
    SELECT registration_id,
           payload -> 'data' -> 'object' ->> 'id' AS object_id,
           CASE WHEN payload -> 'data' -> 'object' ->> 'client_reference_id'
                     ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                THEN CAST(payload -> 'data' -> 'object' ->> 'client_reference_id' AS uuid) END AS reference_id
    FROM webhook_events
    WHERE stripe_event_id = :stripe_event_id
), found AS (
    SELECT 1 AS rank, r.id, r.email, r.processing_status, r.amount_total, r.currency,
           r.stripe_checkout_session_id, r.created_at, r.completed_at, false AS archived
    FROM registrations r JOIN event ON r.id = event.registration_id
    UNION ALL
    SELECT 2, r.id, r.email, r.processing_status, r.amount_total, r.currency,
           r.stripe_checkout_session_id, r.created_at, r.completed_at, false
    FROM registrations r JOIN event ON r.stripe_checkout_session_id = event.object_id
    UNION ALL
    SELECT 3, r.id, r.email, r.processing_status, r.amount_total, r.currency,
           r.stripe_checkout_session_id, r.created_at, r.completed_at, false
    FROM registrations r JOIN event ON r.id = event.reference_id
    UNION ALL
    SELECT 4, a.id, a.email, a.processing_status, a.amount_total, a.currency,
           a.stripe_checkout_session_id, a.created_at, a.completed_at, true
    FROM registrations_archive a JOIN event ON a.id = event.registration_id
    UNION ALL
    SELECT 5, a.id, a.email, a.processing_status, a.amount_total, a.currency,
           a.stripe_checkout_session_id, a.created_at, a.completed_at, true
    FROM registrations_archive a JOIN event ON a.stripe_checkout_session_id = event.object_id
    UNION ALL
    SELECT 6, a.id, a.email, a.processing_status, a.amount_total, a.currency,
           a.stripe_checkout_session_id, a.created_at, a.completed_at, true
    FROM registrations_archive a JOIN event ON a.id = event.reference_id
)
SELECT CAST(id AS text) AS registration_id, email, processing_status, amount_total, currency,
       stripe_checkout_session_id, created_at, completed_at, archived
FROM found
ORDER BY rank
LIMIT 1

-- name: stuck_events_list
-- Events still 'processing' since before :stuck_before (whatever the window), oldest
-- first, at most :limit rows: the events behind the "Stuck" tile.
SELECT stripe_event_id, event_type, processing_status, attempts, created_at,
       coalesce(processing_started_at, created_at) AS processing_started_at, livemode
FROM webhook_events
WHERE processing_status = 'processing'
  AND coalesce(processing_started_at, created_at) < :stuck_before
ORDER BY coalesce(processing_started_at, created_at), id
LIMIT :limit
