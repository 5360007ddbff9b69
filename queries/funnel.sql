-- Registration funnel: created -> checkout started -> paid -> completed.
--
-- Each step is a subset of the one before it:
--   checkout started: the registration has a Checkout Session id;
--   paid:             checkout started, and either the registration is completed or a
--                     checkout.session.completed event with payment_status 'paid' or a
--                     checkout.session.async_payment_succeeded event was recorded for its
--                     session (a paid session whose registration is still pending shows up
--                     here as the gap between "paid" and "completed");
--   completed:        checkout started and the registration is completed.

-- name: funnel_by_bucket
-- Registrations created in [start, end) per bucket (:bucket 'hour' or 'day', UTC) and how
-- many of them reached each step. Only buckets with registrations are returned.
-- A registration that is completed is paid without a lookup; for the others, whether a paid
-- event was recorded for its session is one probe of the partial index on the paid
-- Checkout Session events by session id (migrations/0113), not a hash of every checkout
-- event of the window.
SELECT date_trunc(:bucket, r.created_at, 'UTC')                       AS bucket,
       count(*)                                                        AS created,
       count(*) FILTER (WHERE r.stripe_checkout_session_id IS NOT NULL) AS checkout_started,
       count(*) FILTER (WHERE r.stripe_checkout_session_id IS NOT NULL
                          AND (r.processing_status = 'completed' OR p.paid))
                                                                       AS paid,
       count(*) FILTER (WHERE r.stripe_checkout_session_id IS NOT NULL
                          AND r.processing_status = 'completed')       AS completed
FROM registrations r
LEFT JOIN LATERAL (
    SELECT true AS paid
    FROM webhook_events e
    WHERE r.processing_status <> 'completed'
      AND e.event_type IN ('checkout.session.completed', 'checkout.session.async_payment_succeeded')
      AND e.payload -> 'data' -> 'object' ->> 'id' = r.stripe_checkout_session_id
      -- A session's events come after its registration was created.
      AND e.created_at >= :start
      AND (e.event_type = 'checkout.session.async_payment_succeeded'
           OR e.payload -> 'data' -> 'object' ->> 'payment_status' = 'paid')
    LIMIT 1
) p ON true
WHERE r.created_at >= :start AND r.created_at < :end
GROUP BY 1
ORDER BY 1

-- name: completion_times
-- Time from creation to completion, in seconds, of the registrations created in
-- [start, end) that are completed: how many, the median and the 95th percentile.
SELECT count(*)                                                         AS completed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at))
                                                                        AS median_seconds,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at))
                                                                        AS p95_seconds
FROM registrations
WHERE created_at >= :start AND created_at < :end
  AND processing_status = 'completed' AND completed_at IS NOT NULL

-- name: stale_pending_registrations
-- Registrations still pending that were created before :stale_before (whatever the
-- window), oldest first, at most :limit rows; total is how many there are in all.
SELECT CAST(id AS text) AS id, email, stripe_checkout_session_id, amount_total, currency, created_at,
       count(*) OVER () AS total
FROM registrations
WHERE processing_status = 'pending' AND created_at < :stale_before
ORDER BY created_at, id
LIMIT :limit
