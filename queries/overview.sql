-- name: event_kpis
-- Headline numbers for events received in [start, end): counts per status, stuck events
-- (still 'processing' since before :stuck_before), success rate over finished events
-- (completed / (completed + failed); null when none finished), p95 processing time of
-- completed events, and the time of the newest event received at all (not only in the window).
SELECT
    count(*)                                                       AS events_received,
    count(*) FILTER (WHERE processing_status = 'completed')        AS completed,
    count(*) FILTER (WHERE processing_status = 'failed')           AS failed,
    count(*) FILTER (WHERE processing_status = 'processing')       AS processing,
    count(*) FILTER (WHERE processing_status = 'pending')          AS pending,
    count(*) FILTER (WHERE processing_status = 'processing'
                       AND coalesce(processing_started_at, created_at) < :stuck_before) AS stuck,
    round(
        count(*) FILTER (WHERE processing_status = 'completed')::numeric
        / nullif(count(*) FILTER (WHERE processing_status IN ('completed', 'failed')), 0),
        4)                                                         AS success_rate,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY processing_duration_ms)
        FILTER (WHERE processing_status = 'completed')             AS p95_duration_ms,
    (SELECT max(created_at) FROM webhook_events)                   AS last_event_at
FROM webhook_events
WHERE created_at >= :start AND created_at < :end

-- name: events_by_bucket
-- Event counts per time bucket (:bucket is 'hour' or 'day', UTC) and status, with a row of
-- zeros for empty buckets so charts show quiet periods as quiet, not missing.
WITH buckets AS (
    SELECT generate_series(
               date_trunc(:bucket, CAST(:start AS timestamptz), 'UTC'),
               CAST(:end AS timestamptz) - interval '1 microsecond',
               CAST('1 ' || :bucket AS interval)) AS bucket
), counts AS (
    SELECT date_trunc(:bucket, created_at, 'UTC') AS bucket,
           count(*) FILTER (WHERE processing_status = 'completed')  AS completed,
           count(*) FILTER (WHERE processing_status = 'failed')     AS failed,
           count(*) FILTER (WHERE processing_status = 'processing') AS processing,
           count(*) FILTER (WHERE processing_status = 'pending')    AS pending
    FROM webhook_events
    WHERE created_at >= :start AND created_at < :end
    GROUP BY 1
)
SELECT b.bucket,
       coalesce(c.completed, 0)  AS completed,
       coalesce(c.failed, 0)     AS failed,
       coalesce(c.processing, 0) AS processing,
       coalesce(c.pending, 0)    AS pending
FROM buckets b
LEFT JOIN counts c USING (bucket)
ORDER BY b.bucket

-- name: event_types
-- Events received in [start, end) per Stripe event type, with how many failed.
SELECT event_type,
       count(*)                                                AS events,
       count(*) FILTER (WHERE processing_status = 'failed')    AS failed,
       count(*) FILTER (WHERE processing_status = 'completed') AS completed
FROM webhook_events
WHERE created_at >= :start AND created_at < :end
GROUP BY event_type
ORDER BY events DESC, event_type

-- name: event_gaps
-- How long the endpoint is usually quiet: the median gap, in seconds, between consecutive
-- events received in [start, end), and how many gaps that median is taken over. The
-- overview warns when the time since the last event is far longer than this.
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY gap_seconds) AS median_gap_seconds,
       count(gap_seconds)                                        AS gaps
FROM (
    SELECT extract(epoch FROM created_at - lag(created_at) OVER (ORDER BY created_at)) AS gap_seconds
    FROM webhook_events
    WHERE created_at >= :start AND created_at < :end
) AS consecutive
WHERE gap_seconds IS NOT NULL
