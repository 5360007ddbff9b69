-- "Who is affected" lists the oldest registrations first and says how many there are in all.
-- With 113,642 of them (the 10M demo history), joining each to its registration to sort and
-- checking each one's paid event took 3 s; the set now carries the registration's created_at
-- with an index in the list's order, so a page is an index range and the total a count of
-- the set. Since the count is no longer re-checked row by row, the triggers make the set
-- exact: a session's first paid event locks the registrations of that session before it
-- reads them, so a registration being completed or given that session at the same moment is
-- read as that transaction leaves it (a statement in a trigger function sees what committed
-- before it started). One case stays open: a registration inserted with the session at the
-- very moment of its first paid event (the app inserts it before the checkout, minutes
-- earlier); reconciliation, which asks Stripe, still finds it.

ALTER TABLE registrations_paid_unfinished ADD COLUMN IF NOT EXISTS registration_created_at timestamptz;
UPDATE registrations_paid_unfinished u SET registration_created_at = r.created_at
FROM registrations r WHERE r.id = u.registration_id AND u.registration_created_at IS DISTINCT FROM r.created_at;
ALTER TABLE registrations_paid_unfinished ALTER COLUMN registration_created_at SET NOT NULL;
CREATE INDEX IF NOT EXISTS registrations_paid_unfinished_order_idx
    ON registrations_paid_unfinished (registration_created_at, registration_id);

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
