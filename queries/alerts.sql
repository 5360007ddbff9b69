-- The Alerts page and the banner every page shows while a critical alert fires.

-- name: alerts_firing
-- Every alert firing now, most severe and newest first, with who acknowledged it and the
-- silence in force (if any) at :now.
SELECT a.id, a.rule, a.fingerprint, a.severity, a.summary, a.started_at, a.fired_at,
       a.last_notified_at, a.acknowledged_at, a.acknowledged_by, a.page,
       s.until      AS silenced_until,
       s.created_by AS silenced_by
FROM alerts a
LEFT JOIN LATERAL (
    SELECT until, created_by FROM alert_silences
    WHERE fingerprint = a.fingerprint AND until > :now
    ORDER BY until DESC LIMIT 1
) s ON true
WHERE a.status = 'firing'
ORDER BY CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, a.fired_at DESC;

-- name: critical_alerts_firing
-- Critical alerts firing now (the banner): summary and rule, newest first.
SELECT id, rule, summary, fired_at, acknowledged_by
FROM alerts
WHERE status = 'firing' AND severity = 'critical'
ORDER BY fired_at DESC
LIMIT 5;

-- name: alerts_history
-- Alerts that fired in [:start, :end), newest first, with their time to detect (fired -
-- started), how long they lasted and how their notifications went.
SELECT a.id, a.rule, a.fingerprint, a.severity, a.status, a.summary, a.started_at, a.fired_at,
       a.resolved_at,
       extract(epoch FROM a.fired_at - a.started_at)                       AS time_to_detect_s,
       extract(epoch FROM coalesce(a.resolved_at, :end) - a.fired_at)      AS firing_s,
       a.acknowledged_by,
       count(n.id) FILTER (WHERE n.status = 'sent')                        AS notifications_sent,
       count(n.id) FILTER (WHERE n.status <> 'sent')                       AS notifications_not_sent
FROM alerts a
LEFT JOIN alert_notifications n ON n.alert_id = a.id
WHERE a.fired_at >= :start AND a.fired_at < :end
GROUP BY a.id
ORDER BY a.fired_at DESC
LIMIT :limit;

-- name: alert_notifications_of
-- Every notification of one alert and how its delivery went.
SELECT id, channel, kind, sequence, status, attempts, error, created_at, sent_at, next_attempt_at,
       jsonb_array_length(attempt_log) AS attempts_logged
FROM alert_notifications
WHERE alert_id = :alert_id
ORDER BY id;

-- name: alert_detection_summary
-- Time to detect over the alerts fired in [:start, :end): how many, median, p95 and max seconds.
SELECT count(*) AS alerts,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - started_at))  AS median_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - started_at)) AS p95_s,
       max(extract(epoch FROM fired_at - started_at))                                           AS max_s
FROM alerts
WHERE fired_at >= :start AND fired_at < :end;
