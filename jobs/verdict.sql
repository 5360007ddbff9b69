-- Facts behind the status verdict (jobs/verdict.py) that the alert rules do not already
-- read. Read-only; the dashboard and `python -m jobs status` run them alike.

-- name: failure_rate_against_usual
-- Events received in the last :recent_minutes before :now and how many of them are failed
-- now, against the same counts over the :usual_days days before that (the usual rate).
-- From the rollups (webhook_window_counts: whole UTC days from the daily level, other whole
-- hours from the hourly one, the partial edge hours from the rows), so exactly a count over
-- webhook_events at any size: the
-- sidebar shows this verdict on every page (reading the week's rows took 1 s at 10M events).
WITH recent AS (
    SELECT coalesce(sum(events), 0) AS events,
           coalesce(sum(events) FILTER (WHERE processing_status = 'failed'), 0) AS failed
    FROM webhook_window_counts(:recent_since, :now)
), usual AS (
    SELECT coalesce(sum(events), 0) AS events,
           coalesce(sum(events) FILTER (WHERE processing_status = 'failed'), 0) AS failed
    FROM webhook_window_counts(:usual_since, :recent_since)
)
SELECT CAST(recent.events AS bigint) AS recent_events,
       CAST(recent.failed AS bigint) AS recent_failed,
       CAST(usual.events AS bigint)  AS usual_events,
       CAST(usual.failed AS bigint)  AS usual_failed
FROM recent, usual;

-- name: firing_alerts
-- Alerts firing now, most severe first: rule, severity, summary and the page that shows them.
SELECT id, rule, severity, summary, page, fired_at
FROM alerts
WHERE status = 'firing'
ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, fired_at DESC;

-- name: missed_events_unrecovered
-- Events a sweep found that Stripe sent and the app never completed, and the oldest of them.
SELECT count(*)               AS open_events,
       min(stripe_created_at) AS oldest_at
FROM missed_events
WHERE status IN ('missing', 'replayed');
