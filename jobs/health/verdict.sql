-- Facts behind the status verdict (jobs/health/verdict.py) that the alert rules do not already
-- read. Read-only; the dashboard and `python -m jobs status` run them alike.

-- name: failure_rate_against_usual
-- Events received in the last :recent_minutes before :now and how many of them are failed
-- now, against the same counts over the :usual_days days before that (the usual rate).
-- From the rollups, on whole UTC hours only (webhook_window_counts on hour bounds reads no
-- rows: whole UTC days from the daily level, the other hours from the hourly one), less or
-- plus the events of the partial hours at the windows' edges, counted on
-- webhook_events_window_idx alone (index-only, it carries processing_status), as the
-- silence rule counts its baseline. So exactly a count over webhook_events, reading at most
-- an hour of index entries at each edge whatever the history: the sidebar shows this
-- verdict on every page (reading the week's rows took 1 s at 10M events).
WITH hours AS (
    SELECT date_trunc('hour', CAST(:usual_since AS timestamptz), 'UTC')  AS usual_hour,
           date_trunc('hour', CAST(:recent_since AS timestamptz), 'UTC') AS recent_hour,
           webhook_rollup_full_from(CAST(:now AS timestamptz))           AS after_now_hour
), usual_edge AS (
    -- the edges: [usual_hour, usual_since), [recent_hour, recent_since), [now, after_now_hour)
    SELECT count(*) AS events, count(*) FILTER (WHERE e.processing_status = 'failed') AS failed
    FROM webhook_events e, hours h
    WHERE e.created_at >= h.usual_hour AND e.created_at < CAST(:usual_since AS timestamptz)
), recent_edge AS (
    SELECT count(*) AS events, count(*) FILTER (WHERE e.processing_status = 'failed') AS failed
    FROM webhook_events e, hours h
    WHERE e.created_at >= h.recent_hour AND e.created_at < CAST(:recent_since AS timestamptz)
), now_edge AS (
    SELECT count(*) AS events, count(*) FILTER (WHERE e.processing_status = 'failed') AS failed
    FROM webhook_events e, hours h
    WHERE e.created_at >= CAST(:now AS timestamptz) AND e.created_at < h.after_now_hour
), recent_hours AS (
    SELECT coalesce(sum(w.events), 0) AS events,
           coalesce(sum(w.events) FILTER (WHERE w.processing_status = 'failed'), 0) AS failed
    FROM hours h, webhook_window_counts(h.recent_hour, h.after_now_hour) w
), usual_hours AS (
    SELECT coalesce(sum(w.events), 0) AS events,
           coalesce(sum(w.events) FILTER (WHERE w.processing_status = 'failed'), 0) AS failed
    FROM hours h, webhook_window_counts(h.usual_hour, h.recent_hour) w
)
SELECT CAST(rh.events - re.events - ne.events AS bigint)                 AS recent_events,
       CAST(rh.failed - re.failed - ne.failed AS bigint)                 AS recent_failed,
       CAST(uh.events - ue.events + re.events AS bigint)                 AS usual_events,
       CAST(uh.failed - ue.failed + re.failed AS bigint)                 AS usual_failed
FROM recent_hours rh, usual_hours uh, usual_edge ue, recent_edge re, now_edge ne;

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
