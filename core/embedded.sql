-- name: ensure_dashboard_role
-- The embedded database's read-only login for the dashboard (no password: the server only
-- listens on a socket in a folder no other local user can enter). It may read every
-- project table, call the read-only functions it reads with, count failed logins through the
-- throttle's functions, and nothing else.
-- Advisory locks are the jobs' "one run at a time": only the superuser may take them here.
DO $$
DECLARE
    project_table text;
    lock_function regprocedure;
    read_function regprocedure;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhook_monitor_dashboard') THEN
        CREATE ROLE webhook_monitor_dashboard LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    ALTER ROLE webhook_monitor_dashboard SET default_transaction_read_only = on;
    GRANT USAGE ON SCHEMA public TO webhook_monitor_dashboard;
    FOR project_table IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
        EXECUTE format('GRANT SELECT ON public.%I TO webhook_monitor_dashboard', project_table);
        IF NOT EXISTS (SELECT 1 FROM pg_policies
                       WHERE schemaname = 'public' AND tablename = project_table
                         AND policyname = 'webhook_monitor_dashboard_read') THEN
            EXECUTE format('CREATE POLICY webhook_monitor_dashboard_read ON public.%I '
                           'FOR SELECT TO webhook_monitor_dashboard USING (true)', project_table);
        END IF;
    END LOOP;
    IF to_regprocedure('public.login_throttle_succeeded(text, text)') IS NOT NULL THEN
        GRANT EXECUTE ON FUNCTION public.login_throttle_take(text, text, timestamptz, integer, double precision,
            double precision, integer, double precision, double precision) TO webhook_monitor_dashboard;
        GRANT EXECUTE ON FUNCTION public.login_throttle_succeeded(text, text) TO webhook_monitor_dashboard;
    END IF;
    -- The window and search functions the dashboard's queries call: every STABLE or IMMUTABLE
    -- function of public that runs as its caller (migrations/functions/ grant them to nobody).
    FOR read_function IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f' AND NOT p.prosecdef
          AND p.provolatile IN ('s', 'i') AND p.prorettype <> 'trigger'::regtype
    LOOP
        EXECUTE 'GRANT EXECUTE ON FUNCTION ' || read_function::text || ' TO webhook_monitor_dashboard';
    END LOOP;
    FOR lock_function IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname LIKE 'pg\_%advisory\_%lock%'
          AND p.proname NOT LIKE '%unlock%'
    LOOP
        -- regprocedure's text is the quoted signature, e.g. pg_advisory_lock(bigint)
        EXECUTE 'REVOKE EXECUTE ON FUNCTION ' || lock_function::text || ' FROM PUBLIC';
    END LOOP;
END
$$
