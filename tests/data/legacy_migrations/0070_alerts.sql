-- Alerting (python -m jobs watch): what fires, what was sent where, and who silenced what.
--
-- The life cycle is Alertmanager's: a rule's condition first seen is 'pending' (a row of
-- alert_pending), becomes a 'firing' row of alerts once it has held for the rule's hold time,
-- and that row turns 'resolved' when the condition clears. A pending condition that clears
-- before its hold time (a blip Stripe's own retry fixed) leaves no alert and sends nothing.

CREATE TABLE IF NOT EXISTS alerts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule             text NOT NULL
        CONSTRAINT alerts_rule_check
        CHECK (rule IN ('payment_event_failed', 'failure_rate', 'silence', 'stuck_events',
                        'missed_events', 'review_needed', 'job_failed')),
    -- rule + subject (e.g. 'payment_event_failed:checkout.session.completed'): one incident.
    fingerprint      text NOT NULL,
    severity         text NOT NULL
        CONSTRAINT alerts_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
    status           text NOT NULL DEFAULT 'firing'
        CONSTRAINT alerts_status_check CHECK (status IN ('firing', 'resolved')),
    summary          text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- When the condition began (e.g. the first failed delivery's commit), when the monitor
    -- fired, resolved and last told anyone. fired_at - started_at is the time to detect.
    started_at       timestamptz NOT NULL,
    fired_at         timestamptz NOT NULL,
    resolved_at      timestamptz,
    last_notified_at timestamptz,
    -- Last evaluation that still saw the condition.
    last_seen_at     timestamptz NOT NULL,
    -- Dashboard page that shows the subject (path under MONITOR_DASHBOARD_URL).
    page             text,
    -- An acknowledged alert sends no reminders; it still resolves (and says so).
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    CONSTRAINT alerts_resolved_check CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
-- At most one firing alert per fingerprint: a burst is one alert, not one per event.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_firing_per_fingerprint
    ON alerts (fingerprint) WHERE status = 'firing';
CREATE INDEX IF NOT EXISTS alerts_fired_at_idx ON alerts (fired_at DESC);

-- Conditions seen but not (yet) held long enough to fire.
CREATE TABLE IF NOT EXISTS alert_pending (
    fingerprint   text PRIMARY KEY,
    rule          text NOT NULL,
    severity      text NOT NULL,
    summary       text NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at    timestamptz NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL
);

-- One row per (alert, channel, kind, sequence): the outbox watch processes deliver from.
-- A row is claimed (claimed_by/claimed_until, FOR UPDATE SKIP LOCKED) before sending, so
-- several watch processes never send the same notification twice.
CREATE TABLE IF NOT EXISTS alert_notifications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel         text NOT NULL
        CONSTRAINT alert_notifications_channel_check CHECK (channel IN ('webhook', 'slack', 'email')),
    kind            text NOT NULL
        CONSTRAINT alert_notifications_kind_check CHECK (kind IN ('firing', 'resolved', 'reminder')),
    -- 0 for firing and resolved; reminders count up.
    sequence        integer NOT NULL DEFAULT 0,
    -- 'pending': queued, not tried yet; 'failed': the last attempt failed (tried again at
    -- next_attempt_at while that is set); 'sent': delivered.
    status          text NOT NULL DEFAULT 'pending'
        CONSTRAINT alert_notifications_status_check CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    error           text,
    -- Every attempt: [{"at": ..., "ok": bool, "error": ..., "by": host}], oldest first.
    attempt_log     jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz,
    claimed_by      text,
    claimed_until   timestamptz,
    sent_at         timestamptz,
    CONSTRAINT alert_notifications_once UNIQUE (alert_id, channel, kind, sequence)
);
CREATE INDEX IF NOT EXISTS alert_notifications_due_idx
    ON alert_notifications (next_attempt_at) WHERE status <> 'sent' AND next_attempt_at IS NOT NULL;

-- Silences: no notification for a fingerprint until a time, recorded with who set it.
CREATE TABLE IF NOT EXISTS alert_silences (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint text NOT NULL,
    until       timestamptz NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    reason      text
);
CREATE INDEX IF NOT EXISTS alert_silences_fingerprint_idx ON alert_silences (fingerprint, until DESC);

ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_silences ENABLE ROW LEVEL SECURITY;


-- Wake `watch` at once on failure-like changes, so a failed payment event is told in
-- seconds rather than at the next evaluation tick. Row triggers with WHEN clauses: the
-- condition is checked without calling any function, so the ordinary inserts and updates
-- of the webhook handler (pending -> processing -> completed) cost next to nothing.
-- NOTIFY payloads repeated in one transaction are delivered once, so a burst is one wake-up.
CREATE OR REPLACE FUNCTION public.monitor_alert_notify()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('monitor_alerts', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS webhook_events_alert_failed_insert ON webhook_events;
CREATE TRIGGER webhook_events_alert_failed_insert
    AFTER INSERT ON webhook_events
    FOR EACH ROW WHEN (NEW.processing_status = 'failed')
    EXECUTE FUNCTION public.monitor_alert_notify();

-- Becoming failed, and leaving failed (so the resolved message is as quick as the alert).
DROP TRIGGER IF EXISTS webhook_events_alert_failed_update ON webhook_events;
CREATE TRIGGER webhook_events_alert_failed_update
    AFTER UPDATE OF processing_status ON webhook_events
    FOR EACH ROW WHEN ((NEW.processing_status = 'failed') <> (OLD.processing_status = 'failed'))
    EXECUTE FUNCTION public.monitor_alert_notify();

DROP TRIGGER IF EXISTS reconciliation_items_alert_review ON reconciliation_items;
CREATE TRIGGER reconciliation_items_alert_review
    AFTER INSERT ON reconciliation_items
    FOR EACH ROW WHEN (NEW.action = 'manual_review' AND NOT NEW.dry_run)
    EXECUTE FUNCTION public.monitor_alert_notify();

DROP TRIGGER IF EXISTS job_runs_alert_failed ON job_runs;
CREATE TRIGGER job_runs_alert_failed
    AFTER UPDATE OF status ON job_runs
    FOR EACH ROW WHEN (NEW.status = 'failed' AND OLD.status IS DISTINCT FROM 'failed')
    EXECUTE FUNCTION public.monitor_alert_notify();
