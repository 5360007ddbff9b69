-- Errors page: what fails, how often, since when, and whether retries fixed it.

-- name: failures_by_bucket_and_type
-- Events received in [start, end) that are failed now, per time bucket (:bucket is 'hour'
-- or 'day', UTC) and event type. Only non-empty (bucket, type) pairs are returned.
SELECT date_trunc(:bucket, created_at, 'UTC') AS bucket, event_type, count(*) AS failed
FROM webhook_events
WHERE processing_status = 'failed' AND created_at >= :start AND created_at < :end
GROUP BY 1, 2
ORDER BY 1, 2

-- name: error_fingerprints
-- Error messages of events received in [start, end), grouped by their fingerprint
-- (public.error_fingerprint, migrations/0061: ids, e-mail addresses and numbers replaced by
-- placeholders, so "timeout after 3012 ms for evt_1" and "timeout after 95 ms for evt_2"
-- count as one error). Largest first,
-- at most :limit fingerprints; still_failing counts the events that are failed now.
WITH messages AS (
    SELECT event_type, processing_status, created_at, error_message,
           public.error_fingerprint(error_message) AS fingerprint
    FROM webhook_events
    WHERE created_at >= :start AND created_at < :end
      AND error_message IS NOT NULL AND error_message <> ''
)
SELECT fingerprint,
       count(*)                                                 AS events,
       count(*) FILTER (WHERE processing_status = 'failed')     AS still_failing,
       min(created_at)                                          AS first_seen,
       max(created_at)                                          AS last_seen,
       string_agg(DISTINCT event_type, ', ' ORDER BY event_type) AS event_types,
       left(min(error_message), 500)                            AS example
FROM messages
GROUP BY fingerprint
ORDER BY events DESC, last_seen DESC
LIMIT :limit

-- name: failure_outcomes
-- Per event type, the events received in [start, end) that failed at least once:
-- still_failing (failed now), recovered (completed after more than one attempt) and
-- retrying (pending or processing again after an earlier attempt).
SELECT event_type,
       count(*) FILTER (WHERE processing_status = 'failed')                    AS still_failing,
       count(*) FILTER (WHERE processing_status = 'completed' AND attempts > 1) AS recovered,
       count(*) FILTER (WHERE processing_status IN ('pending', 'processing')
                          AND attempts > 1)                                     AS retrying
FROM webhook_events
WHERE created_at >= :start AND created_at < :end
  AND (processing_status = 'failed' OR attempts > 1)
GROUP BY event_type
ORDER BY still_failing DESC, recovered DESC, event_type
