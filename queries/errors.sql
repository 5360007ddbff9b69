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
-- Error messages of events received in [start, end), grouped by their fingerprint
-- (public.error_fingerprint, migrations/0061: ids, e-mail addresses and numbers replaced by
-- placeholders, so "timeout after 3012 ms for evt_1" and "timeout after 95 ms for evt_2"
-- count as one error). Largest first,
-- at most :limit fingerprints; still_failing counts the events that are failed now.
-- The fingerprint is computed once, when the message is written (the generated column
-- error_fingerprint, migrations/0110_event_rollups.sql); counts come from the hourly rollups and the window's
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

-- name: failed_attempts_by_bucket_and_category
-- Failed attempts that ended in [start, end), per time bucket (:bucket 'hour' or 'day', UTC)
-- and error category, counted by attempt: a failure a later retry recovered counts too.
-- Events failed before attempts were kept (no attempts row) count once, at their failure.
WITH failures AS (
    SELECT a.finished_at AS failed_at, a.error_category
    FROM webhook_event_attempts a
    WHERE a.outcome = 'failed' AND a.finished_at >= :start AND a.finished_at < :end
    UNION ALL
    SELECT coalesce(e.processed_at, e.created_at), e.error_category
    FROM webhook_events e
    WHERE e.processing_status = 'failed'
      AND coalesce(e.processed_at, e.created_at) >= :start AND coalesce(e.processed_at, e.created_at) < :end
      AND NOT EXISTS (SELECT 1 FROM webhook_event_attempts a WHERE a.stripe_event_id = e.stripe_event_id)
)
SELECT date_trunc(:bucket, failed_at, 'UTC') AS bucket,
       coalesce(error_category, 'unknown') AS category,
       count(*) AS failed
FROM failures
GROUP BY 1, 2
ORDER BY 1, 2

-- name: error_groups
-- Failed attempts that ended in [start, end), grouped by the error's fingerprint
-- (public.error_fingerprint): per group its category, the attempts that failed, the events
-- they belong to and what became of them (recovered = completed since, archived included;
-- still failing; needs a person = failed with no automatic retry planned), the next planned
-- retry, the recovery action of the still-failing events, first and last failure, an
-- example. Most failed attempts first, at most :limit groups.
-- The fingerprints are the ones written with each failure (webhook_event_attempts and
-- webhook_events.error_fingerprint, migrations/0110 and 0112; 'unspecified error' for a
-- failure without a message), not computed by regex here; the window's failed attempts and
-- failed events are index ranges (migrations/0112).
WITH failures AS (
    SELECT a.stripe_event_id, a.error_fingerprint AS fingerprint, a.error_message, a.error_category,
           a.finished_at AS failed_at
    FROM webhook_event_attempts a
    WHERE a.outcome = 'failed' AND a.finished_at >= :start AND a.finished_at < :end
    UNION ALL
    SELECT e.stripe_event_id, coalesce(nullif(e.error_fingerprint, ''), 'unspecified error'), e.error_message,
           e.error_category, coalesce(e.processed_at, e.created_at)
    FROM webhook_events e
    WHERE e.processing_status = 'failed'
      AND coalesce(e.processed_at, e.created_at) >= :start AND coalesce(e.processed_at, e.created_at) < :end
      AND NOT EXISTS (SELECT 1 FROM webhook_event_attempts a WHERE a.stripe_event_id = e.stripe_event_id)
), per_event AS (
    SELECT f.fingerprint,
           f.stripe_event_id,
           count(*) AS failed_attempts,
           min(f.failed_at) AS first_failed,
           max(f.failed_at) AS last_failed,
           max(f.error_category) AS category,
           min(f.error_message) AS example
    FROM failures f
    GROUP BY 1, 2
)
SELECT p.fingerprint,
       mode() WITHIN GROUP (ORDER BY p.category)                                      AS category,
       sum(p.failed_attempts)::bigint                                                 AS failed_attempts,
       count(*)                                                                       AS events,
       count(*) FILTER (WHERE e.processing_status = 'completed' OR x.id IS NOT NULL)  AS recovered,
       count(*) FILTER (WHERE e.processing_status = 'failed')                         AS still_failing,
       count(*) FILTER (WHERE e.processing_status = 'failed' AND e.next_retry_at IS NULL) AS needs_person,
       min(e.next_retry_at) FILTER (WHERE e.processing_status = 'failed')             AS next_retry_at,
       mode() WITHIN GROUP (ORDER BY e.recovery_action)
           FILTER (WHERE e.processing_status = 'failed')                              AS recovery_action,
       min(p.first_failed)                                                            AS first_seen,
       max(p.last_failed)                                                             AS last_seen,
       string_agg(DISTINCT coalesce(e.event_type, x.event_type), ', ')                AS event_types,
       left(min(p.example), 500)                                                      AS example
FROM per_event p
LEFT JOIN webhook_events e ON e.stripe_event_id = p.stripe_event_id
LEFT JOIN webhook_events_archive x ON x.stripe_event_id = p.stripe_event_id
GROUP BY p.fingerprint
ORDER BY failed_attempts DESC, last_seen DESC
LIMIT :limit

-- name: error_group_failing_events
-- The events of one error group (:fingerprint, as error_groups returns it) that are failed
-- now, failed attempts in [start, end): what Retry now would re-deliver, oldest first, at
-- most :limit. Reads the fingerprints written with each failure (an index range per group,
-- migrations/0112).
SELECT e.stripe_event_id, e.event_type, e.error_category, e.recovery_action, e.next_retry_at,
       e.attempts, e.created_at
FROM webhook_events e
WHERE e.processing_status = 'failed'
  AND e.stripe_event_id IN (
      SELECT a.stripe_event_id
      FROM webhook_event_attempts a
      WHERE a.outcome = 'failed' AND a.finished_at >= :start AND a.finished_at < :end
        AND a.error_fingerprint = :fingerprint
      UNION
      SELECT f.stripe_event_id
      FROM webhook_events f
      WHERE f.processing_status = 'failed'
        AND coalesce(f.processed_at, f.created_at) >= :start AND coalesce(f.processed_at, f.created_at) < :end
        AND coalesce(nullif(f.error_fingerprint, ''), 'unspecified error') = :fingerprint
        AND NOT EXISTS (SELECT 1 FROM webhook_event_attempts a WHERE a.stripe_event_id = f.stripe_event_id))
ORDER BY e.created_at
LIMIT :limit

-- name: failure_plan
-- Every failed event now (whatever the window), by category: how many wait for an automatic
-- retry (and when the next is due) and how many need a person.
SELECT coalesce(e.error_category, 'unknown') AS category,
       count(*) FILTER (WHERE e.next_retry_at IS NOT NULL) AS retry_planned,
       count(*) FILTER (WHERE e.next_retry_at IS NULL)     AS needs_person,
       min(e.next_retry_at)                                AS next_retry_at
FROM webhook_events e
WHERE e.processing_status = 'failed'
GROUP BY 1
ORDER BY 1

-- name: event_attempts
-- Every attempt of one event (:stripe_event_id), oldest first: who ran it, when, how long,
-- how it ended, the error and the plan made after it.
SELECT a.attempt, a.source, a.started_at, a.finished_at, a.duration_ms, a.outcome,
       a.error_category, a.error_message, a.recovery_action, a.alert_level, a.next_retry_at
FROM webhook_event_attempts a
WHERE a.stripe_event_id = :stripe_event_id
ORDER BY a.attempt
