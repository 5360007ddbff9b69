-- Errors page: what fails, how often, since when, and whether retries fixed it.

-- name: failures_by_bucket_and_type
-- Events received in [start, end) that are failed now, per time bucket (:bucket is 'hour'
-- or 'day', UTC) and event type. Only non-empty (bucket, type) pairs are returned. Daily
-- buckets read the rollups' daily level, hourly ones the hours (only the branch for :bucket runs).
SELECT date_trunc(:bucket, bucket, 'UTC') AS bucket, event_type, CAST(sum(events) AS bigint) AS failed
FROM (
    SELECT bucket, event_type, processing_status, events FROM webhook_window_counts(:start, :end)
    WHERE CAST(:bucket AS text) <> 'hour'
    UNION ALL
    SELECT bucket, event_type, processing_status, events FROM webhook_window_counts_hourly(:start, :end)
    WHERE CAST(:bucket AS text) = 'hour'
) AS window_counts
WHERE processing_status = 'failed'
GROUP BY 1, 2
HAVING sum(events) > 0
ORDER BY 1, 2

-- name: error_fingerprints
-- Error messages of events received in [start, end), grouped by their fingerprint
-- (public.error_fingerprint, migrations/0179_baseline.sql: ids, e-mail addresses and
-- numbers replaced by placeholders, so "timeout after 3012 ms for evt_1" and "timeout after
-- 95 ms for evt_2" count as one error). Largest first, at most :limit fingerprints;
-- still_failing counts the events that are failed now. The fingerprint is computed once,
-- when the message is written (the generated column error_fingerprint,
-- migrations/0179_baseline.sql); counts come from the rollups (daily and hourly) and the
-- window's edges; first and last seen are index lookups; the example is the least message
-- seen in the window (the rollups keep one per hour, even after that event changed).
-- The rollup rows (64,000 hourly ones for 30 days at 10M events before the daily level) are
-- first summed per fingerprint and event type in a hash table (a few hundred groups), and
-- only those are sorted for the list of types: sorting every rollup row with its example for
-- a DISTINCT spilled to disk.
WITH per_type AS (
    SELECT error_fingerprint,
           event_type,
           sum(events)                                               AS events,
           sum(events) FILTER (WHERE processing_status = 'failed')   AS still_failing,
           bool_or(events > 0)                                       AS listed,
           min(example)                                              AS example
    FROM webhook_window_counts(:start, :end)
    WHERE error_fingerprint <> ''
    GROUP BY error_fingerprint, event_type
), grouped AS (
    SELECT error_fingerprint                                         AS fingerprint,
           sum(events)                                               AS events,
           coalesce(sum(still_failing), 0)                           AS still_failing,
           string_agg(event_type, ', ' ORDER BY event_type) FILTER (WHERE listed) AS event_types,
           min(example)                                              AS example
    FROM per_type
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
-- Counted by the hourly failure rollup and the window's edge hours (webhook_failure_window,
-- migrations/functions/error_rollups.sql): a count over the failed attempts, at a cost that
-- follows the window's length, not its traffic.
SELECT date_trunc(:bucket, bucket, 'UTC') AS bucket,
       coalesce(nullif(error_category, ''), 'unknown') AS category,
       CAST(sum(failures) AS bigint) AS failed
FROM webhook_failure_window(:start, :end)
GROUP BY 1, 2
HAVING sum(failures) > 0
ORDER BY 1, 2

-- name: error_groups
-- Failed attempts that ended in [start, end), grouped by the error's fingerprint
-- (public.error_fingerprint): per group its category, the attempts that failed, the events
-- they belong to and what became of them (recovered = completed since, archived included;
-- still failing; needs a person = failed with no automatic retry planned), the next planned
-- retry, the recovery action of the still-failing events, first and last failure, an
-- example. Most failed attempts first, at most :limit groups.
-- Read from the error rollups (migrations/functions/error_rollups.sql), not from every failed
-- attempt of the window: failed attempts per hour × fingerprint × category, and each event ×
-- fingerprint once, in the hour (whole days: the day) of its last failure, with what became
-- of the event (those
-- whose last failure is after the window and that also failed inside it are found by an
-- index on their span of failures). First and last failure, and the next retry, are index
-- probes per group. The category is the most common among the group's events of each
-- event's highest category in this group (over all its failures with this fingerprint, not
-- only those in the window); the example the least message the rollup saw in
-- each hour of the window (it can be one whose attempt has since been archived).
WITH pairs AS MATERIALIZED (
    SELECT * FROM webhook_error_event_window(:start, :end)
), grouped AS (
    SELECT error_fingerprint,
           sum(events)                                               AS events,
           coalesce(sum(events) FILTER (WHERE recovered), 0)         AS recovered,
           coalesce(sum(events) FILTER (WHERE failing), 0)           AS still_failing,
           coalesce(sum(events) FILTER (WHERE failing AND needs_person), 0) AS needs_person
    FROM pairs
    GROUP BY 1
    HAVING sum(events) > 0
), types AS (
    SELECT error_fingerprint, string_agg(event_type, ', ' ORDER BY event_type) AS event_types
    FROM (SELECT error_fingerprint, event_type FROM pairs WHERE event_type <> ''
          GROUP BY 1, 2 HAVING sum(events) > 0) t
    GROUP BY 1
), categories AS (
    SELECT DISTINCT ON (error_fingerprint) error_fingerprint, error_category
    FROM (SELECT error_fingerprint, error_category, sum(events) AS events
          FROM pairs WHERE error_category <> '' GROUP BY 1, 2 HAVING sum(events) > 0) c
    ORDER BY error_fingerprint, events DESC, error_category
), actions AS (
    SELECT DISTINCT ON (error_fingerprint) error_fingerprint, recovery_action
    FROM (SELECT error_fingerprint, recovery_action, sum(events) AS events
          FROM pairs WHERE failing AND recovery_action <> '' GROUP BY 1, 2 HAVING sum(events) > 0) a
    ORDER BY error_fingerprint, events DESC, recovery_action
), failures AS (
    SELECT error_fingerprint, sum(failures) AS failed_attempts, min(example) AS example
    FROM webhook_failure_window(:start, :end)
    GROUP BY 1
), crossing_start AS (
    -- Events × fingerprints that failed before the window and again after its start: the
    -- first failure of each inside the window.
    SELECT p.error_fingerprint,
           (SELECT min(a.finished_at) FROM webhook_event_attempts a
            WHERE a.stripe_event_id = p.stripe_event_id AND a.outcome = 'failed'
              AND a.error_fingerprint = p.error_fingerprint
              AND a.finished_at >= :start AND a.finished_at < :end) AS first_in
    FROM webhook_error_events p
    WHERE tstzrange(p.first_failed, p.last_failed, '[]') @> CAST(:start AS timestamptz)
      AND p.first_failed < :start
), crossing_end AS (
    -- Events × fingerprints that failed inside the window and again after its end: the last
    -- failure of each inside the window.
    SELECT p.error_fingerprint,
           (SELECT max(a.finished_at) FROM webhook_event_attempts a
            WHERE a.stripe_event_id = p.stripe_event_id AND a.outcome = 'failed'
              AND a.error_fingerprint = p.error_fingerprint
              AND a.finished_at >= :start AND a.finished_at < :end) AS last_in
    FROM webhook_error_events p
    WHERE tstzrange(p.first_failed, p.last_failed, '[]') @> CAST(:end AS timestamptz)
      AND p.last_failed >= :end
)
SELECT g.error_fingerprint                                                      AS fingerprint,
       c.error_category                                                         AS category,
       CAST(f.failed_attempts AS bigint)                                        AS failed_attempts,
       CAST(g.events AS bigint)                                                 AS events,
       CAST(g.recovered AS bigint)                                              AS recovered,
       CAST(g.still_failing AS bigint)                                          AS still_failing,
       CAST(g.needs_person AS bigint)                                           AS needs_person,
       (SELECT min(p.next_retry_at) FROM webhook_error_events p
        WHERE p.error_fingerprint = g.error_fingerprint AND p.failing AND p.next_retry_at IS NOT NULL
          AND p.last_failed >= :start AND p.first_failed < :end
          AND (p.last_failed < :end
               OR webhook_error_failed_within(p.stripe_event_id, p.error_fingerprint, :start, :end))) AS next_retry_at,
       a.recovery_action,
       least((SELECT min(p.first_failed) FROM webhook_error_events p
              WHERE p.error_fingerprint = g.error_fingerprint AND p.first_failed >= :start AND p.first_failed < :end),
             (SELECT min(cs.first_in) FROM crossing_start cs WHERE cs.error_fingerprint = g.error_fingerprint))
                                                                                AS first_seen,
       greatest((SELECT max(p.last_failed) FROM webhook_error_events p
                 WHERE p.error_fingerprint = g.error_fingerprint AND p.last_failed >= :start AND p.last_failed < :end),
                (SELECT max(ce.last_in) FROM crossing_end ce WHERE ce.error_fingerprint = g.error_fingerprint))
                                                                                AS last_seen,
       t.event_types,
       left(f.example, 500)                                                     AS example
FROM grouped g
JOIN failures f ON f.error_fingerprint = g.error_fingerprint
LEFT JOIN types t ON t.error_fingerprint = g.error_fingerprint
LEFT JOIN categories c ON c.error_fingerprint = g.error_fingerprint
LEFT JOIN actions a ON a.error_fingerprint = g.error_fingerprint
ORDER BY failed_attempts DESC, last_seen DESC
LIMIT :limit

-- name: error_group_failing_events
-- The events of one error group (:fingerprint, as error_groups returns it) that are failed
-- now, failed attempts in [start, end): what Retry now would re-deliver, oldest first, at
-- most :limit. The group's rows come from webhook_error_group_failing
-- (migrations/functions/error_rollups.sql) in the order their events were received, an
-- index range that stops at :limit; an event whose last failure is after the window counts
-- if one of its attempts failed inside it.
SELECT e.stripe_event_id, e.event_type, e.error_category, e.recovery_action, e.next_retry_at,
       e.attempts, e.created_at
FROM (
    SELECT p.stripe_event_id, p.created_at
    FROM webhook_error_group_failing(:fingerprint, :start, :end) p
    ORDER BY p.created_at
    LIMIT :limit
) p
JOIN LATERAL (
    -- LIMIT 1 (the id is unique) keeps this a probe per event, never a scan of the failed events.
    SELECT * FROM webhook_events e
    WHERE e.stripe_event_id = p.stripe_event_id AND e.processing_status = 'failed'
    LIMIT 1
) e ON true
ORDER BY p.created_at

-- name: error_group_failing_event_choices
-- The events of one error group that are failed now, failed attempts in [start, end), as
-- Retry now offers and plans them: id, the group's category for the event (its highest
-- among its failures in this group) and when it was received, oldest first, at most :limit.
-- error_group_failing_events without the probe of each event's row: read from the group's
-- webhook_error_events rows alone (their 'failing' is the event's status, kept by the
-- events' trigger), so a render never reads the events table's pages one by one, which on
-- a cold cache took 0.2-0.3 s for 50 events at 10M events.
SELECT p.stripe_event_id, nullif(p.error_category, '') AS error_category, p.created_at
FROM webhook_error_group_failing(:fingerprint, :start, :end) p
ORDER BY p.created_at
LIMIT :limit

-- name: failure_plan
-- Every failed event now (whatever the window), by category: how many wait for an automatic
-- retry (and when the next is due) and how many need a person. How many are failed per
-- category comes from the event rollups (migrations/functions/event_rollups.sql: the daily
-- level holds every day, the pending changes what is not folded yet: a few hundred rows at
-- any size); those with no retry planned, and the next retry, from the failed events'
-- (error_category, next_retry_at) index, one index range per category. Counting every failed
-- event took 50-75 ms at 10M events (300,000 failed); this reads the 80,000 that need a person.
WITH failed AS (
    SELECT error_category, sum(events) AS failed   -- '' is "no category"
    FROM (
        SELECT r.error_category, r.events FROM webhook_event_rollup_daily r WHERE r.processing_status = 'failed'
        UNION ALL
        SELECT d.error_category, d.sign FROM webhook_event_rollup_delta d WHERE d.processing_status = 'failed'
    ) counts
    GROUP BY 1
    HAVING sum(events) > 0
), planned AS MATERIALIZED (   -- each count once: both sums below read it
    -- Two branches each: "no category" is NULL in the rows, and `IS NOT DISTINCT FROM` would
    -- not be an index range.
    SELECT f.error_category,
           f.failed,
           CASE WHEN f.error_category = ''
                THEN (SELECT count(*) FROM webhook_events e
                      WHERE e.processing_status = 'failed' AND e.error_category IS NULL AND e.next_retry_at IS NULL)
                ELSE (SELECT count(*) FROM webhook_events e
                      WHERE e.processing_status = 'failed' AND e.error_category = f.error_category
                        AND e.next_retry_at IS NULL)
           END AS needs_person,
           CASE WHEN f.error_category = ''
                THEN (SELECT min(e.next_retry_at) FROM webhook_events e
                      WHERE e.processing_status = 'failed' AND e.error_category IS NULL)
                ELSE (SELECT min(e.next_retry_at) FROM webhook_events e
                      WHERE e.processing_status = 'failed' AND e.error_category = f.error_category)
           END AS next_retry_at
    FROM failed f
)
SELECT coalesce(nullif(error_category, ''), 'unknown') AS category,
       CAST(sum(failed - needs_person) AS bigint)      AS retry_planned,
       CAST(sum(needs_person) AS bigint)               AS needs_person,
       min(next_retry_at)                              AS next_retry_at
FROM planned
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
