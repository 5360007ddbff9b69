-- Who may call the monitor's functions. A function file (see tracking.sql); its name sorts
-- first, so the other function files find it applied.
--
-- PostgreSQL grants EXECUTE on a new function to PUBLIC, and Supabase's default privileges
-- grant it to anon, authenticated and service_role too: its API roles, reachable with the
-- public anon key through the REST API. Every function file ends by calling this on the
-- functions it defines, so each apply takes both back: only their owner (the role that runs
-- `python -m jobs migrate`) may call them, and with p_service_role also service_role, the role
-- a Supabase Edge Function calls the tracking functions with. The dashboard's read-only role
-- is granted what it reads with by scripts/dashboard_role.sql (core/embedded.sql on the
-- embedded database).
CREATE OR REPLACE FUNCTION public.webhook_monitor_callable_by(p_functions regprocedure[],
                                                              p_service_role boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    fn regprocedure;
BEGIN
    FOREACH fn IN ARRAY p_functions LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        IF to_regrole('anon') IS NOT NULL THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM anon, authenticated, service_role', fn);
        END IF;
        IF p_service_role AND to_regrole('service_role') IS NOT NULL THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', fn);
        END IF;
    END LOOP;
END
$$;

SELECT public.webhook_monitor_callable_by(
    ARRAY['public.webhook_monitor_callable_by(regprocedure[], boolean)']::regprocedure[]);
