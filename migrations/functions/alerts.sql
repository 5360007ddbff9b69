-- Alerting's wake-up: `python -m jobs watch` LISTENs on monitor_alerts, and these triggers
-- notify it of failure-like changes. A function file (see tracking.sql).

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

CREATE OR REPLACE TRIGGER webhook_events_alert_failed_insert
    AFTER INSERT ON webhook_events
    FOR EACH ROW WHEN (NEW.processing_status = 'failed')
    EXECUTE FUNCTION public.monitor_alert_notify();

CREATE OR REPLACE TRIGGER webhook_events_alert_failed_update
    AFTER UPDATE OF processing_status ON webhook_events
    FOR EACH ROW WHEN ((NEW.processing_status = 'failed') <> (OLD.processing_status = 'failed'))
    EXECUTE FUNCTION public.monitor_alert_notify();

CREATE OR REPLACE TRIGGER reconciliation_items_alert_review
    AFTER INSERT ON reconciliation_items
    FOR EACH ROW WHEN (NEW.action = 'manual_review' AND NOT NEW.dry_run)
    EXECUTE FUNCTION public.monitor_alert_notify();

CREATE OR REPLACE TRIGGER job_runs_alert_failed
    AFTER UPDATE OF status ON job_runs
    FOR EACH ROW WHEN (NEW.status = 'failed' AND OLD.status IS DISTINCT FROM 'failed')
    EXECUTE FUNCTION public.monitor_alert_notify();

-- Callable by their owner only (_privileges.sql says why).
SELECT public.webhook_monitor_callable_by(ARRAY[
        'public.monitor_alert_notify()'
]::regprocedure[]);
