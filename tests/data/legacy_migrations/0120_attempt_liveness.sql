-- A crashed worker's events are taken over at the next delivery, not after a fixed wait.
--
-- Until now an event left 'processing' by a worker that died (SIGKILL, OOM, a lost machine)
-- answered every re-delivery with 'retry_later' until p_stale_after (5 minutes) had passed.
-- Now a processing attempt can prove it is alive: webhook_event_hold takes a session-level
-- advisory lock keyed by the event on the connection doing the work. PostgreSQL frees such a
-- lock the moment that session ends, and a session ends when its process dies (the socket
-- closes), so for an attempt that holds it:
--   lock held  -> the worker is alive: 'retry_later' (until p_stale_after: a hung worker)
--   lock free  -> the worker is gone: the next delivery takes the event over at once.
-- An attempt that does not call webhook_event_hold (another language, psql, an older caller)
-- keeps the old rule: it is taken over once p_stale_after has passed. So the time threshold
-- stays only as the fallback for a worker that hangs while holding its connection.
--
-- The key is (0x5745 'WE', hashtext(event id)); the jobs' own locks use 0x5748. Two events
-- whose ids hash alike share a lock: a crashed one may then look alive until p_stale_after,
-- never the other way round (a live worker is never taken over early).
-- The three tracking functions keep their signatures and behaviour; only
-- webhook_event_begin's decision for a 'processing' row changes. The attempt releases the lock
-- with webhook_event_release once its outcome is recorded (or by closing its session).

ALTER TABLE webhook_event_attempts ADD COLUMN IF NOT EXISTS holds_lock boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN webhook_event_attempts.holds_lock IS
    'The attempt''s connection took the event''s advisory lock (webhook_event_hold): while the '
    'lock is free the attempt''s worker is gone and the next delivery takes the event over.';


CREATE OR REPLACE FUNCTION public.webhook_event_lock_held(p_stripe_event_id text, p_by_me boolean DEFAULT false)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
-- True while another session (p_by_me: this session) holds the event's liveness lock.
SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_locks AS l
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d
                          WHERE d.datname = pg_catalog.current_database())
       AND l.classid = 22341::oid
       AND l.objid = pg_catalog.hashtext(p_stripe_event_id)::oid
       AND (l.pid = pg_catalog.pg_backend_pid()) = coalesce(p_by_me, false))
$$;


CREATE OR REPLACE FUNCTION public.webhook_event_lock(p_stripe_event_id text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
-- Take the event's liveness lock for this session if it is free (true; also true, taking
-- nothing more, when this session has it already), before webhook_event_begin on the same
-- connection: the attempt begin opens is then marked as holding it in the same transaction
-- that claims the event, so no moment exists where the claim is made and the proof is not.
-- False: another session holds it (a live worker); call begin anyway, it decides.
BEGIN
    IF public.webhook_event_lock_held(p_stripe_event_id, true) THEN
        RETURN true;
    END IF;
    RETURN pg_catalog.pg_try_advisory_lock(22341, pg_catalog.hashtext(p_stripe_event_id));
END
$$;


CREATE OR REPLACE FUNCTION public.webhook_event_hold(
    p_stripe_event_id text,
    p_attempt         integer
)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
-- For a caller that claims on one connection and works on another: called on the working
-- connection right after webhook_event_begin said 'process' (webhook_event_lock before begin
-- on one connection does the same with no gap between claim and lock). Takes the event's session-level advisory lock and marks
-- the attempt as holding it, so a re-delivery can tell a live worker from a dead one. True
-- when held; false (nothing held) when the attempt no longer owns the event or another
-- session still holds the lock (a hung worker taken over by time): the attempt then runs
-- under the time rule only. Release it with webhook_event_complete/_fail on the same
-- connection, or webhook_event_release; ending the session releases it too.
DECLARE
    v_owns boolean;
BEGIN
    IF NOT public.webhook_event_lock(p_stripe_event_id) THEN
        RETURN false;
    END IF;
    UPDATE public.webhook_event_attempts AS a
       SET holds_lock = true
      FROM public.webhook_events AS e
     WHERE a.stripe_event_id = p_stripe_event_id AND a.attempt = p_attempt AND a.outcome = 'processing'
       AND e.stripe_event_id = a.stripe_event_id AND e.processing_status = 'processing'
       AND e.attempts = p_attempt;
    v_owns := FOUND;
    IF NOT v_owns THEN
        PERFORM pg_catalog.pg_advisory_unlock(22341, pg_catalog.hashtext(p_stripe_event_id));
    END IF;
    RETURN v_owns;
END
$$;


CREATE OR REPLACE FUNCTION public.webhook_event_release(p_stripe_event_id text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
-- Release the event's liveness lock if this session holds it (false, silently, if not).
-- Session-level locks ignore transactions: a rolled-back attempt still holds it until here.
BEGIN
    IF public.webhook_event_lock_held(p_stripe_event_id, true) THEN
        RETURN pg_catalog.pg_advisory_unlock(22341, pg_catalog.hashtext(p_stripe_event_id));
    END IF;
    RETURN false;
END
$$;


CREATE OR REPLACE FUNCTION public.webhook_event_begin(
    p_stripe_event_id   text,
    p_event_type        text,
    p_payload           jsonb,
    p_stripe_created_at timestamptz DEFAULT NULL,
    p_livemode          boolean DEFAULT false,
    p_stale_after       interval DEFAULT interval '5 minutes',
    p_source            text DEFAULT 'delivery',
    p_raw_payload       text DEFAULT NULL
)
RETURNS TABLE (decision text, attempt integer, previous_status text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
-- Record a delivery and decide, atomically, what this caller should do with it:
--   process        new event, a failed one, one whose worker is gone (its attempt held the
--                  event's liveness lock, webhook_event_hold, and the lock is free now), or
--                  one whose worker went silent longer than p_stale_after (a hung worker, or
--                  an attempt that never took the lock); the row is now 'processing',
--                  'attempt' is this caller's attempt number (pass it to complete/fail) and
--                  an attempt row is open
--   skip_duplicate already completed: answer 2xx and do nothing
--   retry_later    another worker is processing it right now: answer non-2xx
-- p_source says who delivered (delivery, retry, sweep); p_raw_payload keeps the body as
-- received when p_payload is a placeholder for a body jsonb cannot hold. The attempt opened
-- is marked holds_lock when this session holds the event's lock (webhook_event_lock).
DECLARE
    v_status  text;
    v_started timestamptz;
    v_attempt integer;
    v_held    boolean;
    v_mine    boolean := public.webhook_event_lock_held(p_stripe_event_id, true);
    v_source  text := CASE WHEN p_source IN ('delivery', 'retry', 'sweep') THEN p_source ELSE 'delivery' END;
BEGIN
    IF p_stripe_event_id IS NULL OR btrim(p_stripe_event_id) = '' THEN
        RAISE EXCEPTION 'webhook_event_begin: p_stripe_event_id is required'
            USING ERRCODE = '22023';
    END IF;

    INSERT INTO public.webhook_events AS e
        (stripe_event_id, event_type, processing_status, payload, raw_payload, attempts,
         stripe_created_at, livemode, processing_started_at, updated_at)
    VALUES
        (p_stripe_event_id, p_event_type, 'processing', p_payload, p_raw_payload, 1,
         p_stripe_created_at, coalesce(p_livemode, false), clock_timestamp(), clock_timestamp())
    ON CONFLICT (stripe_event_id) DO NOTHING;
    IF FOUND THEN
        INSERT INTO public.webhook_event_attempts (stripe_event_id, event_type, attempt, source, started_at, holds_lock)
        VALUES (p_stripe_event_id, p_event_type, 1, v_source, clock_timestamp(), v_mine)
        ON CONFLICT ON CONSTRAINT webhook_event_attempts_event_attempt_key DO NOTHING;
        RETURN QUERY SELECT 'process'::text, 1, NULL::text;
        RETURN;
    END IF;

    SELECT e.processing_status, coalesce(e.processing_started_at, e.updated_at, e.created_at), e.attempts
      INTO v_status, v_started, v_attempt
      FROM public.webhook_events AS e
     WHERE e.stripe_event_id = p_stripe_event_id
       FOR UPDATE;

    IF v_status = 'completed' THEN
        RETURN QUERY SELECT 'skip_duplicate'::text, v_attempt, v_status;
        RETURN;
    END IF;

    IF v_status = 'processing'
       AND v_started > clock_timestamp() - coalesce(p_stale_after, interval '5 minutes') THEN
        -- Within the time limit the worker keeps the event unless it proved to be alive
        -- and no longer is: its attempt took the lock and no other session holds it now
        -- (this caller may: webhook_event_lock before begin). The row lock above orders this
        -- against webhook_event_hold's update of the same attempt.
        SELECT a.holds_lock INTO v_held
          FROM public.webhook_event_attempts AS a
         WHERE a.stripe_event_id = p_stripe_event_id AND a.attempt = v_attempt;
        IF NOT coalesce(v_held, false) OR public.webhook_event_lock_held(p_stripe_event_id) THEN
            RETURN QUERY SELECT 'retry_later'::text, v_attempt, v_status;
            RETURN;
        END IF;
    END IF;

    -- pending, failed, or processing by a worker that is gone or went silent: this caller
    -- takes over. The last error stays on the row until complete; every attempt's stays in
    -- the attempts table.
    UPDATE public.webhook_event_attempts AS a
       SET outcome = 'superseded', finished_at = clock_timestamp()
     WHERE a.stripe_event_id = p_stripe_event_id AND a.outcome = 'processing';
    UPDATE public.webhook_events AS e
       SET processing_status     = 'processing',
           attempts              = e.attempts + 1,
           processing_started_at = clock_timestamp(),
           next_retry_at         = NULL,
           raw_payload           = coalesce(p_raw_payload, e.raw_payload),
           updated_at            = clock_timestamp()
     WHERE e.stripe_event_id = p_stripe_event_id
    RETURNING e.attempts INTO v_attempt;
    INSERT INTO public.webhook_event_attempts (stripe_event_id, event_type, attempt, source, started_at, holds_lock)
    VALUES (p_stripe_event_id, p_event_type, v_attempt, v_source, clock_timestamp(), v_mine)
    ON CONFLICT ON CONSTRAINT webhook_event_attempts_event_attempt_key DO NOTHING;
    RETURN QUERY SELECT 'process'::text, v_attempt, v_status;
END
$$;


REVOKE EXECUTE ON FUNCTION public.webhook_event_hold(text, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION public.webhook_event_release(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION public.webhook_event_lock(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION public.webhook_event_lock_held(text, boolean) FROM PUBLIC;
DO $$
DECLARE
    api_role text;
BEGIN
    FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = api_role) THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION public.webhook_event_hold(text, integer) FROM %I', api_role);
            EXECUTE format('REVOKE EXECUTE ON FUNCTION public.webhook_event_release(text) FROM %I', api_role);
            EXECUTE format('REVOKE EXECUTE ON FUNCTION public.webhook_event_lock(text) FROM %I', api_role);
            EXECUTE format('REVOKE EXECUTE ON FUNCTION public.webhook_event_lock_held(text, boolean) FROM %I', api_role);
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION public.webhook_event_hold(text, integer) TO service_role;
        GRANT EXECUTE ON FUNCTION public.webhook_event_release(text) TO service_role;
        GRANT EXECUTE ON FUNCTION public.webhook_event_lock(text) TO service_role;
        GRANT EXECUTE ON FUNCTION public.webhook_event_lock_held(text, boolean) TO service_role;
    END IF;
END
$$;
