-- What the alert-channel scenarios (devharness/scenarios/alert_channels_down.py) count.

-- name: complete_events
-- The events' problem fixed (their alert resolves).
UPDATE webhook_events SET processing_status = 'completed', processed_at = now()
WHERE stripe_event_id = ANY(CAST(:ids AS text[]))

-- name: alert_notification_states
-- Notifications of the alerts of these event types, per status.
SELECT n.kind, n.status, count(*) AS n, max(n.attempts) AS max_attempts
FROM alert_notifications n JOIN alerts a ON a.id = n.alert_id
WHERE a.rule = 'payment_event_failed'
GROUP BY n.kind, n.status ORDER BY n.kind, n.status

-- name: alert_channel_states
-- Notifications of the payment_event_failed alerts, per channel, kind and status.
SELECT n.channel, n.kind, n.status, count(*) AS n
FROM alert_notifications n JOIN alerts a ON a.id = n.alert_id
WHERE a.rule = 'payment_event_failed'
GROUP BY n.channel, n.kind, n.status ORDER BY n.channel, n.kind, n.status
