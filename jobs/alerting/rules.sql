-- Facts each alert rule judges (jobs/alerting/rules.py). One block per rule, named after it;
-- each reads only a few index ranges, since watch runs them every few seconds.

-- name: payment_event_failed
-- Failed checkout.session.* events received since :since, per event type: how many, how
-- many no automatic retry will fix (error policy: next_retry_at unset), the next planned
-- retry, when the first failure was committed, the five newest event ids and the latest
-- error. Read from webhook_events_failed_checkout_idx (migrations/0179_baseline.sql), whose
-- predicate the conditions below repeat: the event types by a skip over the index (one
-- probe per type), then per type the counts by an index-only range scan and the five newest
-- rows by five index probes, so no row is read per failed event (110-145 ms at 10M events
-- before, 5-11 ms; without the index, as on a database not yet migrated, it scans the table
-- once per type).
WITH RECURSIVE types AS (
    SELECT min(e.event_type) AS event_type
    FROM webhook_events e
    WHERE e.processing_status = 'failed' AND e.event_type LIKE 'checkout.session.%'
    UNION ALL
    SELECT (SELECT min(e.event_type)
            FROM webhook_events e
            WHERE e.processing_status = 'failed' AND e.event_type LIKE 'checkout.session.%'
              AND e.event_type > types.event_type)
    FROM types
    WHERE types.event_type IS NOT NULL
)
SELECT types.event_type,
       counts.failed,
       counts.without_retry,
       counts.next_retry_at,
       counts.first_failed_at,
       counts.last_failed_at,
       newest.example_event_ids,
       newest.last_error
FROM types
CROSS JOIN LATERAL (
    SELECT count(*)                                            AS failed,
           count(*) FILTER (WHERE e.next_retry_at IS NULL)     AS without_retry,
           min(e.next_retry_at)                                AS next_retry_at,
           min(coalesce(e.processed_at, e.updated_at, e.created_at)) AS first_failed_at,
           max(coalesce(e.processed_at, e.updated_at, e.created_at)) AS last_failed_at
    FROM webhook_events e
    WHERE e.processing_status = 'failed' AND e.event_type LIKE 'checkout.session.%'
      AND e.event_type = types.event_type AND e.created_at >= :since
) AS counts
CROSS JOIN LATERAL (
    SELECT array_agg(five.stripe_event_id ORDER BY five.created_at DESC)   AS example_event_ids,
           (array_agg(five.error_message ORDER BY five.created_at DESC))[1] AS last_error
    FROM (SELECT e.stripe_event_id, e.error_message, e.created_at
          FROM webhook_events e
          WHERE e.processing_status = 'failed' AND e.event_type LIKE 'checkout.session.%'
            AND e.event_type = types.event_type AND e.created_at >= :since
          ORDER BY e.created_at DESC
          LIMIT 5) AS five
) AS newest
WHERE types.event_type IS NOT NULL AND counts.failed > 0
ORDER BY types.event_type;

-- name: failure_rate
-- Events received in [:since, :until) and how many of them are failed now (an event whose
-- retry succeeded no longer counts).
SELECT count(*)                                           AS events,
       count(*) FILTER (WHERE processing_status = 'failed') AS failed,
       min(created_at) FILTER (WHERE processing_status = 'failed') AS first_failed_at
FROM webhook_events
WHERE created_at >= :since AND created_at < :until;

-- name: silence
-- The last event received before :until, and how many events arrived in the :baseline_hours
-- hours before it (the traffic the silence is measured against): (last - hours, last].
-- Counted from whole UTC hours only: the rollups' count of the hours from the one holding
-- `last - hours` to the one holding `last` (webhook_window_counts on hour bounds reads no
-- rows), less the events of the first hour up to `last - hours` and those of the last
-- hour after `last`, counted on webhook_events_window_idx alone (index-only). Exact, and
-- it reads at most an hour of index entries at each edge whatever the history (47 ms at 10M
-- events when the two partial edge hours were read from the rows, 2-4 ms now).
-- For a thin last day, the same time of the week: the events of [last, :until) shifted back
-- 1 to :weeks weeks (weekly_events), over the weeks the history reaches back to
-- (weekly_weeks: those whose shifted start is not before the first event kept).
WITH last_event AS (
    SELECT max(created_at) AS last_event_at FROM webhook_events WHERE created_at < :until
), bounds AS (
    SELECT last_event_at,
           last_event_at - make_interval(hours => CAST(:baseline_hours AS integer)) AS since
    FROM last_event
), hours AS (
    SELECT last_event_at, since,
           date_trunc('hour', since, 'UTC')                             AS first_hour,
           date_trunc('hour', last_event_at, 'UTC') + interval '1 hour' AS after_last_hour
    FROM bounds
), weeks AS (
    -- (last, until) shifted: the last event itself is not part of the silence
    SELECT k, hours.last_event_at - make_interval(days => 7 * k) + interval '1 microsecond' AS shifted_start,
           CAST(:until AS timestamptz) - make_interval(days => 7 * k) AS shifted_end
    FROM hours, generate_series(1, CAST(:weeks AS integer)) AS k
    WHERE hours.last_event_at IS NOT NULL
      AND hours.last_event_at - make_interval(days => 7 * k) >= (SELECT min(created_at) FROM webhook_events)
)
SELECT hours.last_event_at,
       CAST(CASE WHEN hours.last_event_at IS NULL THEN 0 ELSE
           (SELECT coalesce(sum(w.events), 0) FROM webhook_window_counts(hours.first_hour, hours.after_last_hour) w)
           - (SELECT count(*) FROM webhook_events e
              WHERE e.created_at >= hours.first_hour AND e.created_at <= hours.since)
           - (SELECT count(*) FROM webhook_events e
              WHERE e.created_at > hours.last_event_at AND e.created_at < hours.after_last_hour)
       END AS bigint) AS baseline_events,
       CAST((SELECT coalesce(sum(w.events), 0)
             FROM weeks, webhook_window_counts(weeks.shifted_start, weeks.shifted_end) w) AS bigint) AS weekly_events,
       CAST((SELECT count(*) FROM weeks) AS integer) AS weekly_weeks
FROM hours;

-- name: stuck_events
-- Events still 'processing' whose attempt began before :stuck_before.
SELECT count(*)                                                  AS stuck,
       min(coalesce(processing_started_at, updated_at, created_at)) AS oldest_started_at,
       (array_agg(stripe_event_id ORDER BY created_at))[1:5]       AS example_event_ids
FROM webhook_events
WHERE processing_status = 'processing'
  AND coalesce(processing_started_at, updated_at, created_at) < :stuck_before
HAVING count(*) > 0;

-- name: review_needed
-- Open manual-review items (dry runs excepted), per kind.
SELECT kind,
       count(*)        AS items,
       min(created_at) AS oldest_at,
       (array_agg(id ORDER BY created_at))[1:5] AS example_item_ids
FROM reconciliation_items
WHERE action = 'manual_review' AND resolved_at IS NULL AND NOT dry_run
GROUP BY kind
ORDER BY kind;

-- name: job_failed
-- Per job: its last finished run (status, error, times) and its last run of any kind,
-- and its last scheduled run (a job that has one is being run by `schedule`).
SELECT j.job,
       last_done.status      AS last_status,
       last_done.error       AS last_error,
       last_done.started_at  AS last_done_started_at,
       last_done.finished_at AS last_done_finished_at,
       last_done.id          AS last_done_run_id,
       (SELECT max(started_at) FROM job_runs r WHERE r.job = j.job) AS last_started_at,
       (SELECT max(started_at) FROM job_runs r WHERE r.job = j.job AND r.trigger = 'schedule') AS last_scheduled_at
FROM (SELECT DISTINCT job FROM job_runs WHERE started_at >= :since) AS j
LEFT JOIN LATERAL (
    SELECT id, status, error, started_at, finished_at
    FROM job_runs r
    WHERE r.job = j.job AND r.status IN ('completed', 'needs_review', 'failed')
    ORDER BY r.started_at DESC
    LIMIT 1
) AS last_done ON true
ORDER BY j.job;

-- name: missed_events
-- Events Stripe sent that the sweep found with no row and that still have no completed one,
-- per currency (NULL: events without an amount): how many, the money, the oldest, when the
-- sweep first found one, when Stripe forgets the first, a few event ids (largest first).
SELECT currency,
       count(*)                                                                AS events,
       sum(amount)                                                             AS amount,
       min(stripe_created_at)                                                  AS first_created_at,
       min(found_at)                                                           AS first_found_at,
       min(retention_deadline)                                                 AS first_forgotten_at,
       (array_agg(stripe_event_id ORDER BY amount DESC NULLS LAST, stripe_created_at))[1:5] AS example_event_ids
FROM missed_events
WHERE status IN ('missing', 'replayed')
GROUP BY currency
ORDER BY sum(amount) DESC NULLS LAST, currency;

-- name: endpoint_disabled
-- The app's webhook endpoints that Stripe reports disabled, as the sweep last listed them.
SELECT stripe_endpoint_id, url, disabled_since, seen_at
FROM stripe_webhook_endpoints
WHERE watched AND status = 'disabled'
ORDER BY url, stripe_endpoint_id;

-- name: endpoint_misconfigured
-- The app's enabled webhook endpoints that miss an event type the app needs, or render
-- events in another API version than the pinned one.
SELECT stripe_endpoint_id, url, api_version, expected_api_version, missing_events, api_version_mismatch,
       first_seen_at, seen_at
FROM stripe_webhook_endpoints
WHERE watched AND status <> 'disabled' AND (cardinality(missing_events) > 0 OR api_version_mismatch)
ORDER BY url, stripe_endpoint_id;
