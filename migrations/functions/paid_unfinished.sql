-- "Who is affected": registrations_paid_unfinished, the registrations not completed although
-- their Checkout Session was paid, kept as a set by statement triggers with transition
-- tables on registrations and checkout_paid_sessions (one set-based statement per
-- statement). A function file (see tracking.sql).

CREATE OR REPLACE FUNCTION public.registrations_paid_unfinished_from_registrations()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM public.registrations_paid_unfinished u
        USING gone g WHERE u.registration_id = g.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO public.registrations_paid_unfinished (registration_id, session_id, registration_created_at)
        SELECT c.id, c.stripe_checkout_session_id, c.created_at
        FROM changed c
        JOIN public.checkout_paid_sessions p ON p.session_id = c.stripe_checkout_session_id
        WHERE c.processing_status <> 'completed'
        ON CONFLICT (registration_id) DO UPDATE
            SET session_id = EXCLUDED.session_id, registration_created_at = EXCLUDED.registration_created_at;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.registrations_paid_unfinished_from_sessions()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM public.registrations_paid_unfinished;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM public.registrations_paid_unfinished u
        USING gone g WHERE u.session_id = g.session_id;
    ELSE
        -- Wait for a transaction changing one of these registrations right now; the INSERT
        -- below, a new statement, then reads it as that transaction left it. Deliveries add
        -- one session at a time; a bulk insert is registration_rollup_rebuild(), which holds
        -- registrations in SHARE mode (no writer at all), so its millions of rows are not
        -- locked one by one.
        IF (SELECT count(*) FROM (SELECT 1 FROM changed LIMIT 1001) AS few) <= 1000 THEN
            PERFORM 1
            FROM changed c JOIN public.registrations r ON r.stripe_checkout_session_id = c.session_id
            FOR UPDATE OF r;
        END IF;
        INSERT INTO public.registrations_paid_unfinished (registration_id, session_id, registration_created_at)
        SELECT r.id, r.stripe_checkout_session_id, r.created_at
        FROM changed c
        JOIN public.registrations r ON r.stripe_checkout_session_id = c.session_id
        WHERE r.processing_status <> 'completed'
        ON CONFLICT (registration_id) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER registrations_paid_unfinished_insert
    AFTER INSERT ON registrations REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_registrations();

CREATE OR REPLACE TRIGGER registrations_paid_unfinished_update
    AFTER UPDATE ON registrations REFERENCING OLD TABLE AS gone NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_registrations();

CREATE OR REPLACE TRIGGER registrations_paid_unfinished_delete
    AFTER DELETE ON registrations REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_registrations();

CREATE OR REPLACE TRIGGER registrations_paid_unfinished_truncate
    AFTER TRUNCATE ON registrations
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_sessions();

CREATE OR REPLACE TRIGGER checkout_paid_sessions_unfinished_insert
    AFTER INSERT ON checkout_paid_sessions REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_sessions();

CREATE OR REPLACE TRIGGER checkout_paid_sessions_unfinished_delete
    AFTER DELETE ON checkout_paid_sessions REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_sessions();

CREATE OR REPLACE TRIGGER checkout_paid_sessions_unfinished_truncate
    AFTER TRUNCATE ON checkout_paid_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_sessions();

-- Callable by their owner only (_privileges.sql says why).
SELECT public.webhook_monitor_callable_by(ARRAY[
        'public.registrations_paid_unfinished_from_registrations()',
        'public.registrations_paid_unfinished_from_sessions()'
]::regprocedure[]);
