-- What `python -m jobs metrics` publishes (jobs/health/metrics.py), read at scrape time. Every
-- statement reads a rollup, a small partial index or a small table, so a scrape costs the
-- same at 10k and 10M events; the scrape runs read-only under the budget below.

-- name: scrape_budget
-- The scrape's statement_timeout, for this transaction only.
SELECT set_config('statement_timeout', CAST(:timeout_ms AS text), true);

-- name: events_by_status
-- Every recorded event (the archive excepted) by status, type and error category: the
-- rollups' whole history (whole UTC days from the daily level, the rest hourly, pending
-- changes added) up to the hour after :now, which holds no raw-row edge.
SELECT w.processing_status AS status, w.event_type, w.error_category AS category,
       CAST(sum(w.events) AS bigint) AS events
FROM webhook_window_counts(CAST('2000-01-01' AS timestamptz),
                           date_trunc('hour', CAST(:now AS timestamptz), 'UTC') + interval '1 hour') w
GROUP BY 1, 2, 3
HAVING sum(w.events) <> 0
ORDER BY 1, 2, 3;

-- name: duration_histogram
-- Processing durations of every finished event, as the rollups' fixed bins (bin k holds
-- durations in [1.05^(k-1), 1.05^k) ms): the bin's representative milliseconds and its count.
SELECT webhook_duration_bin_value(d.bin) AS ms, CAST(sum(d.events) AS bigint) AS events
FROM webhook_duration_window(CAST('2000-01-01' AS timestamptz),
                             date_trunc('hour', CAST(:now AS timestamptz), 'UTC') + interval '1 hour') d
WHERE d.bin IS NOT NULL AND d.processing_status IN ('completed', 'failed')
GROUP BY d.bin
HAVING sum(d.events) > 0
ORDER BY d.bin;

-- name: failed_events
-- Failed events now: those an automatic retry is planned for, and those that need a person
-- (the error policy set no retry). Index-only on webhook_events_failed_category_idx.
SELECT count(*) FILTER (WHERE next_retry_at IS NOT NULL) AS awaiting_retry,
       count(*) FILTER (WHERE next_retry_at IS NULL)     AS needs_person
FROM webhook_events
WHERE processing_status = 'failed';

-- name: missed_events
-- Events the sweep found that Stripe sent and the app never completed, per currency ('' for
-- events without an amount), with their amount in minor units.
SELECT coalesce(currency, '') AS currency, count(*) AS events, coalesce(sum(amount), 0) AS amount
FROM missed_events
WHERE status IN ('missing', 'replayed')
GROUP BY 1
ORDER BY 1;

-- name: firing_alerts
-- Firing alerts per rule and severity.
SELECT rule, severity, count(*) AS alerts
FROM alerts
WHERE status = 'firing'
GROUP BY 1, 2;

-- name: jobs
-- Per job: its last run's status and when it last completed (completed or needs_review).
SELECT j.job,
       (SELECT r.status FROM job_runs r WHERE r.job = j.job ORDER BY r.started_at DESC LIMIT 1) AS last_status,
       (SELECT max(coalesce(r.finished_at, r.started_at)) FROM job_runs r
        WHERE r.job = j.job AND r.status IN ('completed', 'needs_review'))                  AS last_success_at
FROM (SELECT DISTINCT job FROM job_runs) AS j
ORDER BY j.job;

-- name: review_items
-- Open manual-review items (dry runs excepted), per kind.
SELECT kind, count(*) AS items
FROM reconciliation_items
WHERE action = 'manual_review' AND resolved_at IS NULL AND NOT dry_run
GROUP BY kind
ORDER BY kind;

-- name: stripe_endpoints
-- Stripe's webhook endpoints as the sweep's endpoint check last listed them.
SELECT stripe_endpoint_id, url, status, watched,
       (cardinality(missing_events) > 0 OR api_version_mismatch) AS misconfigured
FROM stripe_webhook_endpoints
ORDER BY url, stripe_endpoint_id;

-- name: last_event
-- When the newest recorded event arrived (one probe of webhook_events_window_idx).
SELECT max(created_at) AS last_event_at FROM webhook_events;
