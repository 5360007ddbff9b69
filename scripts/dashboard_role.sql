-- Optional: a read-only login role for the dashboard (DASHBOARD_DATABASE_URL).
--
--   psql "$DATABASE_URL" -v dashboard_password='choose-a-long-secret' -f scripts/dashboard_role.sql
--   DASHBOARD_DATABASE_URL=postgresql://webhook_monitor_dashboard:choose-a-long-secret@host:5432/db
--
-- The role can SELECT the project's tables and nothing else; it cannot write even if a query
-- tried, and its sessions are read-only with a statement timeout. Row-level security is on
-- for every project table (so Supabase's REST API does not expose them); the policies below
-- let this one role read them. Safe to run again, e.g. after a migration adds a table.
\set ON_ERROR_STOP on

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhook_monitor_dashboard') AS create_role \gset
\if :create_role
CREATE ROLE webhook_monitor_dashboard LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
\endif
ALTER ROLE webhook_monitor_dashboard WITH LOGIN PASSWORD :'dashboard_password';
ALTER ROLE webhook_monitor_dashboard SET default_transaction_read_only = on;
ALTER ROLE webhook_monitor_dashboard SET statement_timeout = '5s';

GRANT USAGE ON SCHEMA public TO webhook_monitor_dashboard;

DO $$
DECLARE
    project_table text;
BEGIN
    FOREACH project_table IN ARRAY ARRAY[
        'webhook_events', 'webhook_events_archive', 'registrations', 'registrations_archive',
        'reconciliation_runs', 'reconciliation_items', 'cleanup_runs', 'job_runs',
        'database_health_snapshots', 'scheduled_runs', 'health_reports', 'webhook_event_attempts',
        'alerts', 'alert_pending', 'alert_notifications', 'alert_silences',
        'sweep_runs', 'missed_events', 'login_throttle',
        'webhook_event_rollup', 'webhook_event_duration_rollup', 'webhook_event_rollup_delta',
        'webhook_event_rollup_daily', 'webhook_event_duration_rollup_daily',
        'webhook_failure_rollup', 'webhook_failure_rollup_delta', 'webhook_error_events',
        'webhook_error_event_rollup', 'webhook_error_event_rollup_daily', 'webhook_error_event_rollup_delta',
        'registration_funnel_rollup', 'registration_completion_rollup', 'registration_payment_rollup',
        'registration_rollup_delta', 'checkout_paid_sessions', 'registration_completion_daily',
        'registrations_paid_unfinished', 'monitor_heartbeats', 'stripe_webhook_endpoints'
    ] LOOP
        IF to_regclass('public.' || project_table) IS NULL THEN
            CONTINUE;  -- e.g. registrations skipped with --without-reference
        END IF;
        EXECUTE format('GRANT SELECT ON public.%I TO webhook_monitor_dashboard', project_table);
        IF NOT EXISTS (SELECT 1 FROM pg_policies
                       WHERE schemaname = 'public' AND tablename = project_table
                         AND policyname = 'webhook_monitor_dashboard_read') THEN
            EXECUTE format('CREATE POLICY webhook_monitor_dashboard_read ON public.%I '
                           'FOR SELECT TO webhook_monitor_dashboard USING (true)', project_table);
        END IF;
    END LOOP;
    -- A view of constants (the retry policy): readable, no row-level security to open.
    IF to_regclass('public.error_retry_policy') IS NOT NULL THEN
        GRANT SELECT ON public.error_retry_policy TO webhook_monitor_dashboard;
    END IF;
END
$$;

-- The window and search functions the dashboard's queries call (migrations/functions/ grant
-- them to nobody): every STABLE or IMMUTABLE function of public that runs as its caller. On a
-- Supabase project that includes the app's own such functions in public; the role's
-- sessions are read-only and its row-level security policies cover the monitor's tables only.
DO $$
DECLARE
    read_function regprocedure;
BEGIN
    FOR read_function IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f' AND NOT p.prosecdef
          AND p.provolatile IN ('s', 'i') AND p.prorettype <> 'trigger'::regtype
    LOOP
        EXECUTE 'GRANT EXECUTE ON FUNCTION ' || read_function::text || ' TO webhook_monitor_dashboard';
    END LOOP;
END
$$;

-- The password throttle (migrations/functions/login_throttle.sql): the dashboard counts failed
-- logins through these two functions, which run as their owner; the role itself still
-- writes nothing.
DO $$
BEGIN
    IF to_regprocedure('public.login_throttle_succeeded(text, text)') IS NOT NULL THEN
        GRANT EXECUTE ON FUNCTION public.login_throttle_take(text, text, timestamptz, integer, double precision,
            double precision, integer, double precision, double precision) TO webhook_monitor_dashboard;
        GRANT EXECUTE ON FUNCTION public.login_throttle_succeeded(text, text) TO webhook_monitor_dashboard;
    END IF;
END
$$;
