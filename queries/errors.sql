-- Errors page: what fails, how often, since when, and whether retries fixed it.

-- name: failures_by_bucket_and_type
-- Events received in [start, end) that are failed now, per time bucket (:bucket is 'hour'
-- or 'day', UTC) and event type. Only non-empty (bucket, type) pairs are returned.
SELECT date_trunc(:bucket, bucket, 'UTC') AS bucket, event_type, CAST(sum(events) AS bigint) AS failed
FROM webhook_window_counts(:start, :end)
WHERE processing_status = 'failed'
GROUP BY 1, 2
HAVING sum(events) > 0
ORDER BY 1, 2

-- name: error_fingerprints
-- Error messages of events received in [start, end), grouped by a fingerprint: the message
-- with UUIDs, Stripe-style ids (evt_1Nx..., cs_test_a1...), long hex strings, e-mail
-- addresses and numbers replaced by placeholders and whitespace collapsed, so "timeout after
-- 3012 ms for evt_1" and "timeout after 95 ms for evt_2" count as one error. Largest first,
-- at most :limit fingerprints; still_failing counts the events that are failed now.
-- The fingerprint is computed once, when the message is written (webhook_error_fingerprint,
-- migrations/0110_event_rollups.sql); counts come from the hourly rollups and the window's
-- edges; first and last seen are index lookups; the example is the least message seen in
-- the window (the rollups keep one per hour, even after that event changed).
WITH grouped AS (
    SELECT error_fingerprint                                         AS fingerprint,
           sum(events)                                               AS events,
           coalesce(sum(events) FILTER (WHERE processing_status = 'failed'), 0) AS still_failing,
           string_agg(DISTINCT event_type, ', ' ORDER BY event_type) FILTER (WHERE events > 0) AS event_types,
           min(example)                                              AS example
    FROM webhook_window_counts(:start, :end)
    WHERE error_fingerprint <> ''
    GROUP BY error_fingerprint
    HAVING sum(events) > 0
)
SELECT g.fingerprint,
       CAST(g.events AS bigint)        AS events,
       CAST(g.still_failing AS bigint) AS still_failing,
       (SELECT min(e.created_at) FROM webhook_events e
        WHERE e.error_fingerprint = g.fingerprint AND e.created_at >= :start AND e.created_at < :end) AS first_seen,
       (SELECT max(e.created_at) FROM webhook_events e
        WHERE e.error_fingerprint = g.fingerprint AND e.created_at >= :start AND e.created_at < :end) AS last_seen,
       g.event_types,
       g.example
FROM grouped g
ORDER BY g.events DESC, last_seen DESC
LIMIT :limit

-- name: failure_outcomes
-- Per event type, the events received in [start, end) that failed at least once:
-- still_failing (failed now), recovered (completed after more than one attempt) and
-- retrying (pending or processing again after an earlier attempt).
SELECT event_type,
       CAST(coalesce(sum(events) FILTER (WHERE processing_status = 'failed'), 0) AS bigint)    AS still_failing,
       CAST(coalesce(sum(retried) FILTER (WHERE processing_status = 'completed'), 0) AS bigint) AS recovered,
       CAST(coalesce(sum(retried) FILTER (WHERE processing_status IN ('pending', 'processing')), 0) AS bigint)
                                                                                              AS retrying
FROM webhook_window_counts(:start, :end)
WHERE processing_status = 'failed' OR retried <> 0
GROUP BY event_type
HAVING coalesce(sum(events) FILTER (WHERE processing_status = 'failed'), 0) > 0 OR sum(retried) > 0
ORDER BY still_failing DESC, recovered DESC, event_type
