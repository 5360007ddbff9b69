-- Facts behind the status verdict (jobs/verdict.py) that the alert rules do not already
-- read. Read-only; the dashboard and `python -m jobs status` run them alike.

-- name: failure_rate_against_usual
-- Events received in the last :recent_minutes before :now and how many of them are failed
-- now, against the same counts over the :usual_days days before that (the usual rate).
SELECT count(*) FILTER (WHERE created_at >= :recent_since)                                   AS recent_events,
       count(*) FILTER (WHERE created_at >= :recent_since AND processing_status = 'failed')  AS recent_failed,
       count(*) FILTER (WHERE created_at < :recent_since)                                    AS usual_events,
       count(*) FILTER (WHERE created_at < :recent_since AND processing_status = 'failed')   AS usual_failed
FROM webhook_events
WHERE created_at >= :usual_since AND created_at < :now;

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
