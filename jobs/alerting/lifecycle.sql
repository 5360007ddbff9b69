-- The alert life cycle (jobs/alerting/lifecycle.py) and the notification outbox
-- (jobs/alerting/notify.py).

-- name: evaluation_lock
-- One evaluation at a time across every watch process (held to the end of the transaction):
-- a second evaluation waits, then finds the state already updated and changes nothing.
SELECT pg_advisory_xact_lock(:ns, hashtext('alert-evaluation'));

-- name: firing_alerts
-- Every firing alert.
SELECT id, rule, fingerprint, severity, summary, started_at, fired_at, acknowledged_at
FROM alerts
WHERE status = 'firing';

-- name: silenced_fingerprints
-- Fingerprints with a silence in force at :now.
SELECT DISTINCT fingerprint FROM alert_silences WHERE until > :now;

-- name: notification_state
-- Per alert: when a notification was last queued, whether a firing one was, the last sequence.
SELECT alert_id,
       max(created_at)           AS last_queued_at,
       bool_or(kind = 'firing')  AS firing_queued,
       max(sequence)             AS last_sequence
FROM alert_notifications
WHERE alert_id = ANY(:ids)
GROUP BY alert_id;

-- name: upsert_pending
-- Record a condition seen but not yet fired; returns when it was first seen.
INSERT INTO alert_pending AS p (fingerprint, rule, severity, summary, details, started_at, first_seen_at, last_seen_at)
VALUES (:fingerprint, :rule, :severity, :summary, CAST(:details AS jsonb), :started_at, :now, :now)
ON CONFLICT (fingerprint) DO UPDATE
   SET severity = excluded.severity, summary = excluded.summary, details = excluded.details,
       started_at = least(p.started_at, excluded.started_at), last_seen_at = excluded.last_seen_at
RETURNING first_seen_at, started_at;

-- name: forget_pending
-- Drop a rule's pending conditions that no longer hold (a blip that cleared) or that fired.
DELETE FROM alert_pending
WHERE rule = :rule AND NOT (fingerprint = ANY(:keep))
RETURNING fingerprint;

-- name: insert_alert
-- Fire: the partial unique index keeps it to one firing alert per fingerprint.
INSERT INTO alerts (rule, fingerprint, severity, status, summary, details, started_at, fired_at,
                    last_seen_at, page)
VALUES (:rule, :fingerprint, :severity, 'firing', :summary, CAST(:details AS jsonb), :started_at, :now,
        :now, :page)
ON CONFLICT (fingerprint) WHERE status = 'firing' DO NOTHING
RETURNING id;

-- name: refresh_alert
-- A firing alert still holds: keep its numbers current.
UPDATE alerts
   SET severity = :severity, summary = :summary, details = CAST(:details AS jsonb), last_seen_at = :now
 WHERE id = :id AND status = 'firing';

-- name: resolve_alert
-- The condition cleared.
UPDATE alerts
   SET status = 'resolved', resolved_at = :now
 WHERE id = :id AND status = 'firing'
RETURNING id;

-- name: queue_notification
-- One notification for one channel; a second queueing of the same one is a no-op.
INSERT INTO alert_notifications (alert_id, channel, kind, sequence, created_at, next_attempt_at)
VALUES (:alert_id, :channel, :kind, :sequence, :now, :now)
ON CONFLICT ON CONSTRAINT alert_notifications_once DO NOTHING
RETURNING id;

-- name: queue_acknowledgement
-- An alert acknowledged on the dashboard: tell the channels of :channels that were told it
-- fired (PagerDuty acknowledges its incident), once per channel.
INSERT INTO alert_notifications (alert_id, channel, kind, sequence, created_at, next_attempt_at)
SELECT DISTINCT n.alert_id, n.channel, 'acknowledged', 0, CAST(:now AS timestamptz), CAST(:now AS timestamptz)
FROM alert_notifications n
WHERE n.alert_id = :alert_id AND n.kind = 'firing' AND n.channel = ANY(:channels)
ON CONFLICT ON CONSTRAINT alert_notifications_once DO NOTHING
RETURNING id;

-- name: claim_notifications
-- Claim due notifications of the given channels for this process (rows another process is
-- claiming right now are skipped, not waited for): what makes each one sent once.
UPDATE alert_notifications AS n
   SET claimed_by = :host, claimed_until = :claimed_until
 WHERE n.id IN (SELECT id FROM alert_notifications
                 WHERE status <> 'sent'
                   AND next_attempt_at IS NOT NULL AND next_attempt_at <= :now
                   AND (claimed_until IS NULL OR claimed_until < :now)
                   AND channel = ANY(:channels)
                 ORDER BY id
                 LIMIT :limit
                 FOR UPDATE SKIP LOCKED)
RETURNING n.id;

-- name: claimed_notifications
-- The claimed notifications with their alert, oldest first.
SELECT n.id, n.channel, n.kind, n.sequence, n.attempts, n.created_at AS queued_at,
       a.id AS alert_id, a.rule, a.fingerprint, a.severity, a.status AS alert_status, a.summary,
       a.details, a.started_at, a.fired_at, a.resolved_at, a.page
FROM alert_notifications n
JOIN alerts a ON a.id = n.alert_id
WHERE n.id = ANY(:ids)
ORDER BY n.id;

-- name: record_delivery
-- The outcome of one claim's attempts; only the claiming process may record it.
UPDATE alert_notifications
   SET status = :status, attempts = attempts + :attempts, error = :error,
       attempt_log = attempt_log || CAST(:attempt_log AS jsonb),
       sent_at = :sent_at, next_attempt_at = :next_attempt_at,
       claimed_by = NULL, claimed_until = NULL
 WHERE id = :id AND claimed_by = :host
RETURNING alert_id;

-- name: mark_notified
-- The alert's last successful notification.
UPDATE alerts
   SET last_notified_at = greatest(coalesce(last_notified_at, :sent_at), :sent_at)
 WHERE id = :id;

-- name: firing_count
-- How many alerts fire now.
SELECT count(*) FROM alerts WHERE status = 'firing';

-- name: listen
-- Subscribe the watch connection to the alert triggers' channel.
LISTEN monitor_alerts;

-- name: acknowledge_alert
-- Someone has taken a firing alert in hand: no more reminders (it still resolves).
UPDATE alerts
   SET acknowledged_at = :now, acknowledged_by = :actor
 WHERE id = :alert_id AND status = 'firing' AND acknowledged_at IS NULL
RETURNING id;

-- name: silence_fingerprint
-- Hold back every notification of a fingerprint until :until, recorded with who asked.
INSERT INTO alert_silences (fingerprint, until, created_by, created_at, reason)
VALUES (:fingerprint, :until, :actor, :now, :reason)
RETURNING id;

-- name: end_silences
-- End the silences of a fingerprint now (its notifications resume at the next evaluation).
UPDATE alert_silences SET until = :now
 WHERE fingerprint = :fingerprint AND until > :now
RETURNING id;
