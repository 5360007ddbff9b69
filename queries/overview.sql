-- name: event_kpis
-- Headline numbers for events received in [start, end): counts per status, stuck events
-- (still 'processing' since before :stuck_before), success rate over finished events
-- (completed / (completed + failed); null when none finished), p95 processing time of
-- completed events, and the time of the newest event received at all (not only in the
-- window). Counts come from the rollups (whole UTC days from the daily level, the other
-- whole hours from the hourly one) plus the raw rows of the window's partial edge hours
-- (webhook_window_counts, migrations/functions/event_rollups.sql), so they equal a count
-- over webhook_events. The p95 is exact (percentile_cont over the rows) up to 20,000
-- completed events in the window; beyond that it is read from the duration histogram,
-- within 2.5 % of the exact value.
WITH counts AS (
    SELECT coalesce(sum(events), 0)                                             AS events_received,
           coalesce(sum(events) FILTER (WHERE processing_status = 'completed'), 0)  AS completed,
           coalesce(sum(events) FILTER (WHERE processing_status = 'failed'), 0)     AS failed,
           coalesce(sum(events) FILTER (WHERE processing_status = 'processing'), 0) AS processing,
           coalesce(sum(events) FILTER (WHERE processing_status = 'pending'), 0)    AS pending
    FROM webhook_window_counts(:start, :end)
), histogram AS (
    SELECT bin, events, sum(events) OVER (ORDER BY bin) AS running, sum(events) OVER () AS total
    FROM webhook_duration_window(:start, :end)
    WHERE processing_status = 'completed'
)
SELECT CAST(c.events_received AS bigint) AS events_received,
       CAST(c.completed AS bigint)       AS completed,
       CAST(c.failed AS bigint)          AS failed,
       CAST(c.processing AS bigint)      AS processing,
       CAST(c.pending AS bigint)         AS pending,
       (SELECT count(*) FROM webhook_events
        WHERE processing_status = 'processing' AND created_at >= :start AND created_at < :end
          AND coalesce(processing_started_at, created_at) < :stuck_before) AS stuck,
       round(c.completed::numeric / nullif(c.completed + c.failed, 0), 4) AS success_rate,
       CASE WHEN c.completed <= 20000 THEN
                (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY processing_duration_ms)
                 FROM webhook_events
                 WHERE processing_status = 'completed' AND created_at >= :start AND created_at < :end)
            ELSE (SELECT webhook_duration_bin_value(min(bin)) FROM histogram
                  WHERE running >= 0.95 * (total - 1) + 1)
       END                                                        AS p95_duration_ms,
       (SELECT max(created_at) FROM webhook_events)               AS last_event_at
FROM counts c

-- name: events_by_bucket
-- Event counts per time bucket (:bucket is 'hour' or 'day', UTC) and status, with a row of
-- zeros for empty buckets so charts show quiet periods as quiet, not missing. Daily buckets
-- read the rollups' daily level (webhook_window_counts); hourly ones need the hours
-- (webhook_window_counts_hourly): only the branch for :bucket runs.
WITH buckets AS (
    SELECT generate_series(
               date_trunc(:bucket, CAST(:start AS timestamptz), 'UTC'),
               CAST(:end AS timestamptz) - interval '1 microsecond',
               -- a UTC day is 24 hours ('1 day' steps 23 or 25 hours across a daylight-saving
               -- change in a session whose time zone has one)
               CAST(CASE WHEN CAST(:bucket AS text) = 'day' THEN '24 hours' ELSE '1 ' || :bucket END AS interval))
               AS bucket
), counts AS (
    SELECT date_trunc(:bucket, bucket, 'UTC') AS bucket,
           sum(events) FILTER (WHERE processing_status = 'completed')  AS completed,
           sum(events) FILTER (WHERE processing_status = 'failed')     AS failed,
           sum(events) FILTER (WHERE processing_status = 'processing') AS processing,
           sum(events) FILTER (WHERE processing_status = 'pending')    AS pending
    FROM (
        SELECT bucket, processing_status, events FROM webhook_window_counts(:start, :end)
        WHERE CAST(:bucket AS text) <> 'hour'
        UNION ALL
        SELECT bucket, processing_status, events FROM webhook_window_counts_hourly(:start, :end)
        WHERE CAST(:bucket AS text) = 'hour'
    ) AS window_counts
    GROUP BY 1
)
SELECT b.bucket,
       CAST(coalesce(c.completed, 0) AS bigint)  AS completed,
       CAST(coalesce(c.failed, 0) AS bigint)     AS failed,
       CAST(coalesce(c.processing, 0) AS bigint) AS processing,
       CAST(coalesce(c.pending, 0) AS bigint)    AS pending
FROM buckets b
LEFT JOIN counts c USING (bucket)
ORDER BY b.bucket

-- name: event_types
-- Events received in [start, end) per Stripe event type, with how many failed.
SELECT event_type,
       CAST(sum(events) AS bigint)                                                    AS events,
       CAST(coalesce(sum(events) FILTER (WHERE processing_status = 'failed'), 0) AS bigint)    AS failed,
       CAST(coalesce(sum(events) FILTER (WHERE processing_status = 'completed'), 0) AS bigint) AS completed
FROM webhook_window_counts(:start, :end)
GROUP BY event_type
HAVING sum(events) > 0
ORDER BY events DESC, event_type

-- name: event_gaps
-- How long the endpoint is usually quiet: the median gap, in seconds, between consecutive
-- events received in [start, end), and how many gaps that median is taken over. The
-- overview warns when the time since the last event is far longer than this. Taken over the
-- newest 10,001 events of the window (10,000 gaps) at most, so its cost does not grow with
-- the history: on a busy endpoint that is the recent rhythm, which is what the warning needs.
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY gap_seconds) AS median_gap_seconds,
       count(gap_seconds)                                        AS gaps
FROM (
    SELECT extract(epoch FROM lag(created_at) OVER (ORDER BY created_at DESC) - created_at) AS gap_seconds
    FROM (
        SELECT created_at FROM webhook_events
        WHERE created_at >= :start AND created_at < :end
        ORDER BY created_at DESC
        LIMIT 10001
    ) AS newest
) AS consecutive
WHERE gap_seconds IS NOT NULL
