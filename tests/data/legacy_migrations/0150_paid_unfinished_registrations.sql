-- "Who is affected" at any size: the registrations that are not completed although their
-- Checkout Session was paid, kept as a set instead of found at read time.
--
-- queries/affected.sql affected_registrations used to read every paid Checkout Session event
-- of the last 30 days and sort them by session (3 million at 10 million events: minutes).
-- The people it lists are the exception (a payment the app did not apply), so the set is
-- small and is kept here: registrations_paid_unfinished holds each registration whose
-- processing_status is not 'completed' and whose stripe_checkout_session_id has a paid
-- Checkout Session event recorded (checkout_paid_sessions, migrations/0135).
--
-- Statement triggers with transition tables keep it, on registrations (a registration
-- inserted, completed, failed, given a session, archived) and on checkout_paid_sessions (a
-- session's first paid event recorded, its last one archived): one set-based statement per
-- statement, so a bulk load or a rebuild of checkout_paid_sessions costs one join, and a
-- delivery one index probe. The set is a list of candidates: the query checks each one's
-- status and paid event again when it reads them, so a row a race left behind is never
-- shown; and reconciliation, which asks Stripe, still finds any payment not applied.

CREATE TABLE IF NOT EXISTS registrations_paid_unfinished (
    registration_id uuid PRIMARY KEY,
    session_id      text NOT NULL
);
CREATE INDEX IF NOT EXISTS registrations_paid_unfinished_session_idx
    ON registrations_paid_unfinished (session_id);
ALTER TABLE registrations_paid_unfinished ENABLE ROW LEVEL SECURITY;

-- Registrations inserted or updated (the transition table "changed"), or updated or deleted
-- ("gone"): the old rows leave the set, the new ones that qualify enter it.
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
        INSERT INTO public.registrations_paid_unfinished (registration_id, session_id)
        SELECT c.id, c.stripe_checkout_session_id
        FROM changed c
        JOIN public.checkout_paid_sessions p ON p.session_id = c.stripe_checkout_session_id
        WHERE c.processing_status <> 'completed'
        ON CONFLICT (registration_id) DO UPDATE SET session_id = EXCLUDED.session_id;
    END IF;
    RETURN NULL;
END
$$;

-- A session's first paid event (a row inserted into checkout_paid_sessions) brings its
-- registration in when not completed; the last one gone (the row deleted) takes it out.
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
        INSERT INTO public.registrations_paid_unfinished (registration_id, session_id)
        SELECT r.id, r.stripe_checkout_session_id
        FROM changed c
        JOIN public.registrations r ON r.stripe_checkout_session_id = c.session_id
        WHERE r.processing_status <> 'completed'
        ON CONFLICT (registration_id) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION public.registrations_paid_unfinished_from_registrations() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION public.registrations_paid_unfinished_from_sessions() FROM PUBLIC;

DROP TRIGGER IF EXISTS registrations_paid_unfinished_insert ON registrations;
CREATE TRIGGER registrations_paid_unfinished_insert
    AFTER INSERT ON registrations REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_registrations();
DROP TRIGGER IF EXISTS registrations_paid_unfinished_update ON registrations;
CREATE TRIGGER registrations_paid_unfinished_update
    AFTER UPDATE ON registrations REFERENCING OLD TABLE AS gone NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_registrations();
DROP TRIGGER IF EXISTS registrations_paid_unfinished_delete ON registrations;
CREATE TRIGGER registrations_paid_unfinished_delete
    AFTER DELETE ON registrations REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_registrations();
DROP TRIGGER IF EXISTS registrations_paid_unfinished_truncate ON registrations;
CREATE TRIGGER registrations_paid_unfinished_truncate
    AFTER TRUNCATE ON registrations
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_sessions();

DROP TRIGGER IF EXISTS checkout_paid_sessions_unfinished_insert ON checkout_paid_sessions;
CREATE TRIGGER checkout_paid_sessions_unfinished_insert
    AFTER INSERT ON checkout_paid_sessions REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_sessions();
DROP TRIGGER IF EXISTS checkout_paid_sessions_unfinished_delete ON checkout_paid_sessions;
CREATE TRIGGER checkout_paid_sessions_unfinished_delete
    AFTER DELETE ON checkout_paid_sessions REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_sessions();
DROP TRIGGER IF EXISTS checkout_paid_sessions_unfinished_truncate ON checkout_paid_sessions;
CREATE TRIGGER checkout_paid_sessions_unfinished_truncate
    AFTER TRUNCATE ON checkout_paid_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION public.registrations_paid_unfinished_from_sessions();

-- The set for the rows already there.
DELETE FROM registrations_paid_unfinished;
INSERT INTO registrations_paid_unfinished (registration_id, session_id)
SELECT r.id, r.stripe_checkout_session_id
FROM registrations r
JOIN checkout_paid_sessions p ON p.session_id = r.stripe_checkout_session_id
WHERE r.processing_status <> 'completed';
