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

-- Who may call these: their owner (the role that runs `python -m jobs migrate`).
-- PostgreSQL grants EXECUTE on a new function to PUBLIC, and Supabase's default
-- privileges grant it to anon, authenticated and service_role too (its API roles, reachable
-- with the public anon key through the REST API); both are taken back on every apply. The
-- dashboard's read-only role is granted what it reads with by scripts/dashboard_role.sql.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOREACH fn IN ARRAY ARRAY[
        'public.monitor_alert_notify()'
    ]::regprocedure[] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        IF to_regrole('anon') IS NOT NULL THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM anon, authenticated, service_role', fn);
        END IF;
    END LOOP;
END
$$;
