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
-- many of them reached each step. Only buckets with registrations are returned. Whole hours
-- come from the registration rollups, the window's partial first and last hour from the
-- rows (registration_funnel_counts, migrations/functions/registration_rollups.sql): the
-- cost follows the window's length, not the number of registrations in it. "Paid" counts a
-- paid event recorded for the session whenever it arrived (a session's events come after
-- its registration).
SELECT date_trunc(:bucket, bucket, 'UTC')                                 AS bucket,
       CAST(sum(registrations) AS bigint)                                 AS created,
       CAST(coalesce(sum(registrations) FILTER (WHERE has_session), 0) AS bigint) AS checkout_started,
       CAST(coalesce(sum(registrations) FILTER (WHERE has_session AND paid), 0) AS bigint) AS paid,
       CAST(coalesce(sum(registrations) FILTER (WHERE has_session AND completed), 0) AS bigint) AS completed
FROM registration_funnel_counts(:start, :end)
GROUP BY 1
HAVING sum(registrations) <> 0
ORDER BY 1

-- name: completion_times
-- Time from creation to completion, in seconds, of the registrations created in [start,
-- end) that are completed: how many, the median and the 95th percentile. The count comes
-- from the registration rollups (migrations/functions/registration_rollups.sql); the
-- percentiles are exact (percentile_cont over the rows) while the window holds at most
-- 20,000 completed registrations, and beyond that read from the completion-time histogram,
-- within 2.5 % of the exact value (the bin holding percentile_cont's lower rank, its
-- geometric middle).
WITH histogram AS MATERIALIZED (
    SELECT bin, registrations,
           sum(registrations) OVER (ORDER BY bin) AS running,
           sum(registrations) OVER ()             AS total
    FROM registration_completion_window(:start, :end)
), counted AS (
    SELECT coalesce(max(total), 0) AS completed FROM histogram
)
SELECT CAST(c.completed AS bigint) AS completed,
       CASE WHEN c.completed = 0 THEN NULL
            WHEN c.completed <= 20000 THEN
                (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at))
                 FROM registrations
                 WHERE created_at >= :start AND created_at < :end
                   AND processing_status = 'completed' AND completed_at IS NOT NULL)
            ELSE (SELECT registration_completion_bin_value(min(bin)) FROM histogram
                  WHERE running >= 0.5 * (total - 1) + 1)
       END AS median_seconds,
       CASE WHEN c.completed = 0 THEN NULL
            WHEN c.completed <= 20000 THEN
                (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at))
                 FROM registrations
                 WHERE created_at >= :start AND created_at < :end
                   AND processing_status = 'completed' AND completed_at IS NOT NULL)
            ELSE (SELECT registration_completion_bin_value(min(bin)) FROM histogram
                  WHERE running >= 0.95 * (total - 1) + 1)
       END AS p95_seconds
FROM counted c

-- name: stale_pending_registrations
-- Registrations still pending that were created before :stale_before (whatever the
-- window), oldest first, at most :limit rows; total is how many there are in all, counted
-- up to 10,001 (the page says "more than 10,000"): both are ranges of the pending-rows index,
-- where counting them all read every abandoned checkout of the history (205 ms at 10M events).
SELECT CAST(r.id AS text) AS id, r.email, r.stripe_checkout_session_id, r.amount_total, r.currency,
       r.created_at,
       (SELECT count(*) FROM (SELECT 1 FROM registrations p
                              WHERE p.processing_status = 'pending' AND p.created_at < :stale_before
                              LIMIT 10001) AS counted) AS total
FROM registrations r
WHERE r.processing_status = 'pending' AND r.created_at < :stale_before
ORDER BY r.created_at, r.id
LIMIT :limit
