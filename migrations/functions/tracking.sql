-- Event tracking: the functions a webhook handler calls, in any language (psycopg,
-- supabase-js rpc, psql), so every delivery is recorded correctly under duplicates,
-- concurrent deliveries, crashed workers and retries, and the retry policy they read.
--
--   webhook_event_begin    record the event and decide: process | skip_duplicate | retry_later
--   webhook_event_complete the attempt succeeded (call it in the same transaction as the work)
--   webhook_event_fail     the attempt failed: message, category and structured details
--   webhook_event_hold / _release / _lock / _lock_held   the attempt's liveness lock
--
-- Commit begin's transaction before doing the work: the committed 'processing' row is what
-- tells a concurrent delivery of the same event to back off, and what is left behind (and
-- later reclaimed) when a worker dies mid-way.
--
-- Supabase: the functions live in public (so supabase-js can call them with rpc), run as
-- the caller (SECURITY INVOKER, so row-level security still applies: the service_role key
-- works, anon and authenticated do not) and pin an empty search_path with schema-qualified
-- names, so nothing on the caller's path can stand in for the tables.
--
-- A function file: `python -m jobs migrate` applies it again whenever it changes, after the
-- numbered migrations. Edit a function here in place; a changed parameter list or return
-- type needs a DROP FUNCTION IF EXISTS of the old signature above its CREATE.

-- The error policy (core/error_policy.py declares it; tests keep this view equal to it): the
-- retry policy per category, as a view the SQL functions read, so a handler in any language
-- gets the same plan from webhook_event_fail. The functions keep one row per attempt in
-- webhook_event_attempts, so a recovered event's errors stay in the audit trail.

-- The retry policy per category. A view over constants rather than a table: it is part of
-- the schema, not data (no cleanup or TRUNCATE can empty it), and changing it is an edit
-- of this file, reviewed like code.
--   retry_delays_s            seconds to wait before the retry after failed attempt n (the last repeats)
--   max_attempts              no automatic retry is planned once this many attempts have failed
--   recovery_action, alert_level   while an automatic retry is planned
--   recovery_action_exhausted when none is (alert level 'critical')
CREATE OR REPLACE VIEW error_retry_policy AS
SELECT category::text, retry_delays_s::integer[], max_attempts::integer, recovery_action::text,
       alert_level::text, recovery_action_exhausted::text
FROM (VALUES
    ('network',    '{60,300,1800,7200,21600}', 8,  'retry_with_backoff', 'warning',  'investigate'),
    ('database',   '{10,30,60,300,900}',       10, 'retry_soon',         'info',     'investigate'),
    ('stripe',     '{60,300,1800,7200}',       6,  'retry_with_backoff', 'warning',  'check_stripe_access'),
    ('validation', '{}',                       1,  'fix_and_retry',      'critical', 'fix_and_retry'),
    ('unknown',    '{60,600,3600}',            4,  'retry_with_backoff', 'warning',  'investigate')
) AS policy (category, retry_delays_s, max_attempts, recovery_action, alert_level, recovery_action_exhausted);

CREATE OR REPLACE FUNCTION public.webhook_event_lock_held(p_stripe_event_id text, p_by_me boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
-- True while another session (p_by_me: this session) holds the event's liveness lock.
-- PL/pgSQL over pg_lock_status() rather than SQL over the pg_locks view: the plan is made
-- once a session instead of at every call, and every delivery asks this.
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM pg_catalog.pg_lock_status() AS l
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
           AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d
                              WHERE d.datname = pg_catalog.current_database())
           AND l.classid = 22341::oid
           AND l.objid = pg_catalog.hashtext(p_stripe_event_id)::oid
           AND (l.pid = pg_catalog.pg_backend_pid()) = coalesce(p_by_me, false));
END
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
-- The lock is remembered until the end of the transaction (webhook_monitor.locked_event), so
-- a webhook_event_begin in the same transaction, or the same statement, need not look it up.
BEGIN
    IF NOT public.webhook_event_lock_held(p_stripe_event_id, true) THEN
        IF NOT pg_catalog.pg_try_advisory_lock(22341, pg_catalog.hashtext(p_stripe_event_id)) THEN
            RETURN false;
        END IF;
    END IF;
    PERFORM pg_catalog.set_config('webhook_monitor.locked_event', p_stripe_event_id, true);
    RETURN true;
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
        PERFORM pg_catalog.set_config('webhook_monitor.locked_event', '', true);
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
-- is marked holds_lock when this session holds the event's lock (webhook_event_lock; taken
-- in the same transaction, it is known without looking it up). A release inside a savepoint
-- that is rolled back leaves that note behind: an attempt then opened in the same transaction
-- is marked as holding a lock it lacks, and may be taken over early; its webhook_event_complete
-- then returns false, so its work is still applied once.
DECLARE
    v_status  text;
    v_started timestamptz;
    v_attempt integer;
    v_held    boolean;
    v_mine    boolean;
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
        v_mine := CASE WHEN pg_catalog.current_setting('webhook_monitor.locked_event', true) = p_stripe_event_id
                   THEN true ELSE public.webhook_event_lock_held(p_stripe_event_id, true) END;
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
    v_mine := CASE WHEN pg_catalog.current_setting('webhook_monitor.locked_event', true) = p_stripe_event_id
                   THEN true ELSE public.webhook_event_lock_held(p_stripe_event_id, true) END;
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

CREATE OR REPLACE FUNCTION public.webhook_event_complete(
    p_stripe_event_id text,
    p_outcome         text DEFAULT NULL,
    p_registration_id uuid DEFAULT NULL,
    p_attempt         integer DEFAULT NULL
)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
-- Mark the attempt completed. Returns false, changing nothing, when the event is not
-- 'processing' or (with p_attempt) when another worker has since reclaimed it: the caller
-- then rolls back its work, so the event's effects are applied by one attempt only.
-- The row's error columns are cleared; the failed attempts keep theirs.
DECLARE
    v_attempt integer;
BEGIN
    UPDATE public.webhook_events AS e
       SET processing_status      = 'completed',
           processed_at           = clock_timestamp(),
           processing_duration_ms = greatest(0, round(extract(epoch FROM clock_timestamp()
                                        - coalesce(e.processing_started_at, e.created_at)) * 1000))::integer,
           outcome                = p_outcome,
           registration_id        = coalesce(p_registration_id, e.registration_id),
           error_message          = NULL,
           error_category         = NULL,
           error_details          = NULL,
           recovery_action        = NULL,
           alert_level            = NULL,
           next_retry_at          = NULL,
           updated_at             = clock_timestamp()
     WHERE e.stripe_event_id = p_stripe_event_id
       AND e.processing_status = 'processing'
       AND (p_attempt IS NULL OR e.attempts = p_attempt)
    RETURNING e.attempts INTO v_attempt;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE public.webhook_event_attempts AS a
       SET outcome     = 'completed',
           finished_at = clock_timestamp(),
           duration_ms = greatest(0, round(extract(epoch FROM clock_timestamp() - a.started_at) * 1000))::integer
     WHERE a.stripe_event_id = p_stripe_event_id AND a.attempt = v_attempt;
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION public.webhook_event_fail(
    p_stripe_event_id text,
    p_error_message   text,
    p_error_details   jsonb DEFAULT NULL,
    p_error_category  text DEFAULT NULL,
    p_attempt         integer DEFAULT NULL,
    p_retryable       boolean DEFAULT NULL
)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
-- Mark the attempt failed with its error and plan what happens next from
-- public.error_retry_policy: next_retry_at (null when no automatic retry is planned),
-- recovery_action and alert_level. p_retryable is the classifier's "can a retry help?";
-- null means the category's default (every category but validation). A category outside
-- the allowed set is stored as 'unknown' (the one given is kept in the details).
-- Returns false when the event is not 'processing' or another worker has reclaimed it.
DECLARE
    v_category  text := coalesce(p_error_category, 'unknown');
    v_details   jsonb := p_error_details;
    v_policy    record;
    v_attempt   integer;
    v_retryable boolean;
    v_delays    integer;
    v_next      timestamptz;
    v_action    text;
    v_level     text;
    v_message   text := left(coalesce(nullif(btrim(p_error_message), ''), 'unspecified error'), 2000);
BEGIN
    IF v_category NOT IN ('network', 'validation', 'database', 'stripe', 'unknown') THEN
        v_details := coalesce(v_details, '{}'::jsonb)
                     || jsonb_build_object('requested_category', p_error_category);
        v_category := 'unknown';
    END IF;
    SELECT * INTO v_policy FROM public.error_retry_policy AS p WHERE p.category = v_category;

    SELECT e.attempts INTO v_attempt
      FROM public.webhook_events AS e
     WHERE e.stripe_event_id = p_stripe_event_id
       AND e.processing_status = 'processing'
       AND (p_attempt IS NULL OR e.attempts = p_attempt)
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    v_delays := coalesce(cardinality(v_policy.retry_delays_s), 0);
    v_retryable := coalesce(p_retryable, v_delays > 0) AND v_delays > 0;
    IF v_retryable AND v_attempt < v_policy.max_attempts THEN
        v_next := clock_timestamp()
                  + make_interval(secs => v_policy.retry_delays_s[least(greatest(v_attempt, 1), v_delays)]);
        v_action := v_policy.recovery_action;
        v_level := v_policy.alert_level;
    ELSE
        v_next := NULL;
        v_action := coalesce(v_policy.recovery_action_exhausted, 'investigate');
        v_level := 'critical';
    END IF;

    UPDATE public.webhook_events AS e
       SET processing_status      = 'failed',
           processed_at           = clock_timestamp(),
           processing_duration_ms = greatest(0, round(extract(epoch FROM clock_timestamp()
                                        - coalesce(e.processing_started_at, e.created_at)) * 1000))::integer,
           error_message          = v_message,
           error_category         = v_category,
           error_details          = v_details,
           recovery_action        = v_action,
           alert_level            = v_level,
           next_retry_at          = v_next,
           updated_at             = clock_timestamp()
     WHERE e.stripe_event_id = p_stripe_event_id;

    INSERT INTO public.webhook_event_attempts AS a
        (stripe_event_id, event_type, attempt, source, started_at)
    SELECT e.stripe_event_id, e.event_type, v_attempt, 'delivery',
           coalesce(e.processing_started_at, clock_timestamp())
      FROM public.webhook_events AS e WHERE e.stripe_event_id = p_stripe_event_id
    ON CONFLICT ON CONSTRAINT webhook_event_attempts_event_attempt_key DO NOTHING;  -- rows begun before this migration
    UPDATE public.webhook_event_attempts AS a
       SET outcome         = 'failed',
           finished_at     = clock_timestamp(),
           duration_ms     = greatest(0, round(extract(epoch FROM clock_timestamp() - a.started_at) * 1000))::integer,
           error_message   = v_message,
           error_category  = v_category,
           retryable       = v_retryable,
           recovery_action = v_action,
           alert_level     = v_level,
           next_retry_at   = v_next
     WHERE a.stripe_event_id = p_stripe_event_id AND a.attempt = v_attempt;
    RETURN true;
END
$$;

-- Callable by their owner and by service_role, which Edge Functions call them with (_privileges.sql
-- says why).
SELECT public.webhook_monitor_callable_by(ARRAY[
        'public.webhook_event_lock_held(text, boolean)',
        'public.webhook_event_lock(text)',
        'public.webhook_event_hold(text, integer)',
        'public.webhook_event_release(text)',
        'public.webhook_event_begin(text, text, jsonb, timestamptz, boolean, interval, text, text)',
        'public.webhook_event_complete(text, text, uuid, integer)',
        'public.webhook_event_fail(text, text, jsonb, text, integer, boolean)'
]::regprocedure[], p_service_role => true);

-- What else the functions above touch as the caller. error_fingerprint (defined with the
-- tables in migrations/0179_baseline.sql: stored columns are computed with it) is run by
-- every insert into webhook_events and webhook_event_attempts; the retry policy view and the
-- attempts table are read and written by webhook_event_begin and webhook_event_fail.
-- Supabase's default privileges give the API roles every table and view of public; row-level
-- security keeps them from the tables' rows, and the view is taken back here.
REVOKE ALL ON FUNCTION public.error_fingerprint(text) FROM PUBLIC;
REVOKE ALL ON public.error_retry_policy FROM PUBLIC;
DO $$
BEGIN
    IF to_regrole('anon') IS NOT NULL THEN
        REVOKE ALL ON FUNCTION public.error_fingerprint(text) FROM anon, authenticated, service_role;
        REVOKE ALL ON public.error_retry_policy FROM anon, authenticated;
    END IF;
    IF to_regrole('service_role') IS NOT NULL THEN
        GRANT EXECUTE ON FUNCTION public.error_fingerprint(text) TO service_role;
        GRANT SELECT ON public.error_retry_policy TO service_role;
        GRANT SELECT, INSERT, UPDATE ON public.webhook_event_attempts TO service_role;
    END IF;
END
$$;
