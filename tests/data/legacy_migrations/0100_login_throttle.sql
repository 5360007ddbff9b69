-- The dashboard's password throttle, shared by every dashboard process and replica and
-- surviving restarts: one row per client (its address) and one per account.
--
-- login_throttle_take() checks and counts in one statement (one call, rows locked in a fixed
-- order), so concurrent submits queue on the rows instead of all reading "no failures yet":
-- each granted attempt is counted as a failure up front and login_throttle_succeeded()
-- clears it. A client's own failures slow it down hard (doubling waits); the account's
-- failures from everywhere only space attempts out (one per few seconds), so an attacker
-- elsewhere cannot lock the right password out.
CREATE TABLE IF NOT EXISTS login_throttle (
    key             text PRIMARY KEY,          -- 'client:<address>' or 'account:<name>'
    failures        integer NOT NULL DEFAULT 0,
    last_failure_at timestamptz,
    next_attempt_at timestamptz               -- NULL: may try now
);

ALTER TABLE login_throttle ENABLE ROW LEVEL SECURITY;

-- Returns the seconds the caller must still wait (0 = this attempt may check the password,
-- and is already counted as a failure). Runs as its owner so a read-only dashboard role can
-- call it without any write privilege of its own; nobody else may call it.
CREATE OR REPLACE FUNCTION public.login_throttle_take(
    p_client text, p_account text, p_now timestamptz,
    p_client_free integer, p_client_first_wait_s double precision, p_client_max_wait_s double precision,
    p_account_free integer, p_account_interval_s double precision, p_forget_after_s double precision)
RETURNS double precision
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    client_row  public.login_throttle;
    account_row public.login_throttle;
    client_failures integer;
    account_failures integer;
    wait_s double precision;
BEGIN
    -- Account first, then client, in every call: concurrent calls queue, never deadlock.
    INSERT INTO public.login_throttle (key) VALUES (p_account), (p_client) ON CONFLICT (key) DO NOTHING;
    SELECT * INTO account_row FROM public.login_throttle WHERE key = p_account FOR UPDATE;
    SELECT * INTO client_row FROM public.login_throttle WHERE key = p_client FOR UPDATE;

    wait_s := greatest(0, coalesce(extract(epoch FROM client_row.next_attempt_at - p_now), 0),
                          coalesce(extract(epoch FROM account_row.next_attempt_at - p_now), 0));
    IF wait_s > 0 THEN
        RETURN wait_s;
    END IF;

    -- Failures long ago are forgotten (a typo last week costs nothing today).
    client_failures := CASE WHEN client_row.last_failure_at < p_now - make_interval(secs => p_forget_after_s)
                            THEN 0 ELSE client_row.failures END + 1;
    account_failures := CASE WHEN account_row.last_failure_at < p_now - make_interval(secs => p_forget_after_s)
                             THEN 0 ELSE account_row.failures END + 1;

    UPDATE public.login_throttle
    SET failures = client_failures, last_failure_at = p_now,
        next_attempt_at = p_now + make_interval(secs => CASE
            WHEN client_failures < p_client_free THEN 0
            ELSE least(p_client_first_wait_s * power(2, client_failures - p_client_free), p_client_max_wait_s)
        END)
    WHERE key = p_client;
    UPDATE public.login_throttle
    SET failures = account_failures, last_failure_at = p_now,
        next_attempt_at = p_now + make_interval(secs => CASE
            WHEN account_failures < p_account_free THEN 0 ELSE p_account_interval_s END)
    WHERE key = p_account;
    RETURN 0;
END
$$;

-- The right password: this client and the account start afresh.
CREATE OR REPLACE FUNCTION public.login_throttle_succeeded(p_client text, p_account text)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    UPDATE public.login_throttle
    SET failures = 0, last_failure_at = NULL, next_attempt_at = NULL
    WHERE key IN (p_client, p_account);
$$;

REVOKE EXECUTE ON FUNCTION public.login_throttle_take(text, text, timestamptz, integer, double precision,
    double precision, integer, double precision, double precision) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION public.login_throttle_succeeded(text, text) FROM PUBLIC;
-- Supabase grants EXECUTE on new public functions to anon and authenticated by default.
DO $$
DECLARE
    api_role text;
BEGIN
    FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = api_role) THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION public.login_throttle_take(text, text, timestamptz, '
                           'integer, double precision, double precision, integer, double precision, '
                           'double precision) FROM %I', api_role);
            EXECUTE format('REVOKE EXECUTE ON FUNCTION public.login_throttle_succeeded(text, text) FROM %I',
                           api_role);
        END IF;
    END LOOP;
END
$$;
