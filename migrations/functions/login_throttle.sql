-- The dashboard's password throttle (the login_throttle table): check-and-count in one call,
-- shared by every dashboard process. A function file (see tracking.sql).

-- Returns the seconds the caller must still wait (0 = this attempt may check the password,
-- and is already counted as a failure). Runs as its owner so a read-only dashboard role can
-- call it without any write privilege of its own; nobody else may call it. A client with no
-- recent failure is not held by the account's spacing (a guesser spread over many addresses
-- does not make the administrator wait at a fresh address); each client's second try onwards
-- takes the account's turn. Rows whose last failure is older than p_forget_after_s (and whose
-- wait is over) are deleted a few per call, so the table holds only recent clients.
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
    forgotten_before timestamptz := p_now - make_interval(secs => p_forget_after_s);
    client_known boolean;
    client_failures integer;
    account_failures integer;
    wait_s double precision;
BEGIN
    -- Expired rows, a few per call (SKIP LOCKED: never wait on another attempt's rows).
    DELETE FROM public.login_throttle
    WHERE key IN (SELECT key FROM public.login_throttle
                  WHERE last_failure_at < forgotten_before
                    AND (next_attempt_at IS NULL OR next_attempt_at <= p_now)
                    AND key NOT IN (p_client, p_account)
                  ORDER BY last_failure_at LIMIT 20 FOR UPDATE SKIP LOCKED);

    -- Account first, then client, in every call: concurrent calls queue, never deadlock.
    INSERT INTO public.login_throttle (key) VALUES (p_account), (p_client) ON CONFLICT (key) DO NOTHING;
    SELECT * INTO account_row FROM public.login_throttle WHERE key = p_account FOR UPDATE;
    SELECT * INTO client_row FROM public.login_throttle WHERE key = p_client FOR UPDATE;

    client_known := client_row.failures > 0 AND client_row.last_failure_at >= forgotten_before;
    wait_s := greatest(0, coalesce(extract(epoch FROM client_row.next_attempt_at - p_now), 0),
                          CASE WHEN client_known
                               THEN coalesce(extract(epoch FROM account_row.next_attempt_at - p_now), 0)
                               ELSE 0 END);
    IF wait_s > 0 THEN
        RETURN wait_s;
    END IF;

    -- Failures long ago are forgotten (a typo last week costs nothing today).
    client_failures := CASE WHEN client_known THEN client_row.failures ELSE 0 END + 1;
    account_failures := CASE WHEN account_row.last_failure_at < forgotten_before
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
        next_attempt_at = greatest(account_row.next_attempt_at, p_now + make_interval(secs => CASE
            WHEN account_failures < p_account_free THEN 0 ELSE p_account_interval_s END))
    WHERE key = p_account;
    RETURN 0;
END
$$;

-- The right password: this client's row goes (nothing left to remember) and the account's
-- count starts afresh.
CREATE OR REPLACE FUNCTION public.login_throttle_succeeded(p_client text, p_account text)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    DELETE FROM public.login_throttle WHERE key = p_client;
    UPDATE public.login_throttle
    SET failures = 0, last_failure_at = NULL, next_attempt_at = NULL
    WHERE key = p_account;
$$;

-- Callable by their owner only (_privileges.sql says why).
SELECT public.webhook_monitor_callable_by(ARRAY[
        'public.login_throttle_take(text, text, timestamptz, integer, double precision, double precision, integer, double precision, double precision)',
        'public.login_throttle_succeeded(text, text)'
]::regprocedure[]);
