-- The error policy (core/error_policy.py declares it; tests keep this file equal to it):
--   * the retry policy per category, as a table the SQL functions read, so a handler in
--     any language gets the same plan from webhook_event_fail;
--   * recovery_action, alert_level and next_retry_at on every event (and its archive);
--   * webhook_event_attempts: one row per attempt, written by the tracking functions, so a
--     recovered event's errors stay in the audit trail;
--   * raw_payload: the body as received when PostgreSQL cannot store it as jsonb
--     (a \u0000, absurd nesting); payload then holds a storable placeholder;
--   * retry_claimed_until: a re-delivery in flight (jobs/retry.py), so two retry processes
--     deliver each event once.
-- The three functions are replaced by versions with extra parameters, all with defaults, so
-- every existing call (supabase.rpc, psycopg, psql) keeps working unchanged.

-- The retry policy per category. A view over constants rather than a table: it is part of
-- the schema, not data (no cleanup or TRUNCATE can empty it), and changing it is a new
-- migration with CREATE OR REPLACE VIEW, reviewed like code.
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

ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS recovery_action text
    CONSTRAINT webhook_events_recovery_action_check
    CHECK (recovery_action IN ('retry_soon', 'retry_with_backoff', 'fix_and_retry', 'check_stripe_access', 'investigate'));
ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS alert_level text
    CONSTRAINT webhook_events_alert_level_check CHECK (alert_level IN ('info', 'warning', 'critical'));
ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS next_retry_at timestamptz;
ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS raw_payload text;
ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS retry_claimed_until timestamptz;
ALTER TABLE webhook_events_archive ADD COLUMN IF NOT EXISTS recovery_action text;
ALTER TABLE webhook_events_archive ADD COLUMN IF NOT EXISTS alert_level text;
ALTER TABLE webhook_events_archive ADD COLUMN IF NOT EXISTS next_retry_at timestamptz;
ALTER TABLE webhook_events_archive ADD COLUMN IF NOT EXISTS raw_payload text;

-- The retry job's question: which failed events are due?
CREATE INDEX IF NOT EXISTS webhook_events_next_retry_idx
    ON webhook_events (next_retry_at) WHERE processing_status = 'failed' AND next_retry_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS webhook_event_attempts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stripe_event_id text NOT NULL,
    event_type      text NOT NULL,
    attempt         integer NOT NULL,
    -- who ran it: a delivery (Stripe, or any caller), the retry job, a sweep replay
    source          text NOT NULL DEFAULT 'delivery'
        CONSTRAINT webhook_event_attempts_source_check CHECK (source IN ('delivery', 'retry', 'sweep')),
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    duration_ms     integer,
    outcome         text NOT NULL DEFAULT 'processing'
        CONSTRAINT webhook_event_attempts_outcome_check
        CHECK (outcome IN ('processing', 'completed', 'failed', 'superseded')),
    error_message   text,
    error_category  text
        CONSTRAINT webhook_event_attempts_error_category_check
        CHECK (error_category IN ('network', 'validation', 'database', 'stripe', 'unknown')),
    retryable       boolean,
    recovery_action text,
    alert_level     text
        CONSTRAINT webhook_event_attempts_alert_level_check CHECK (alert_level IN ('info', 'warning', 'critical')),
    next_retry_at   timestamptz,
    CONSTRAINT webhook_event_attempts_event_attempt_key UNIQUE (stripe_event_id, attempt)
);
CREATE INDEX IF NOT EXISTS webhook_event_attempts_started_idx ON webhook_event_attempts (started_at);
CREATE INDEX IF NOT EXISTS webhook_event_attempts_failed_idx
    ON webhook_event_attempts (finished_at) WHERE outcome = 'failed';
ALTER TABLE webhook_event_attempts ENABLE ROW LEVEL SECURITY;


-- New parameters change the functions' identity, so the old versions go first (a CREATE OR
-- REPLACE with more parameters would add an overload and make old calls ambiguous).
DROP FUNCTION IF EXISTS public.webhook_event_begin(text, text, jsonb, timestamptz, boolean, interval);
DROP FUNCTION IF EXISTS public.webhook_event_fail(text, text, jsonb, text, integer);

CREATE FUNCTION public.webhook_event_begin(
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
--   process        new event, a failed one, or one whose worker went silent longer than
--                  p_stale_after; the row is now 'processing', 'attempt' is this caller's
--                  attempt number (pass it to complete/fail) and an attempt row is open
--   skip_duplicate already completed: answer 2xx and do nothing
--   retry_later    another worker is processing it right now: answer non-2xx
-- p_source says who delivered (delivery, retry, sweep); p_raw_payload keeps the body as
-- received when p_payload is a placeholder for a body jsonb cannot hold.
DECLARE
    v_status  text;
    v_started timestamptz;
    v_attempt integer;
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
        INSERT INTO public.webhook_event_attempts (stripe_event_id, event_type, attempt, source, started_at)
        VALUES (p_stripe_event_id, p_event_type, 1, v_source, clock_timestamp())
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
        RETURN QUERY SELECT 'retry_later'::text, v_attempt, v_status;
        RETURN;
    END IF;

    -- pending, failed, or processing by a worker that went silent: this caller takes over.
    -- The last error stays on the row until complete; every attempt's stays in the attempts table.
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
    INSERT INTO public.webhook_event_attempts (stripe_event_id, event_type, attempt, source, started_at)
    VALUES (p_stripe_event_id, p_event_type, v_attempt, v_source, clock_timestamp())
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


CREATE FUNCTION public.webhook_event_fail(
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


REVOKE EXECUTE ON FUNCTION public.webhook_event_begin(text, text, jsonb, timestamptz, boolean, interval, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION public.webhook_event_fail(text, text, jsonb, text, integer, boolean) FROM PUBLIC;
DO $$
DECLARE
    api_role text;
BEGIN
    FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = api_role) THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION public.webhook_event_begin(text, text, jsonb, timestamptz, boolean, interval, text, text) FROM %I', api_role);
            EXECUTE format('REVOKE EXECUTE ON FUNCTION public.webhook_event_fail(text, text, jsonb, text, integer, boolean) FROM %I', api_role);
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION public.webhook_event_begin(text, text, jsonb, timestamptz, boolean, interval, text, text) TO service_role;
        GRANT EXECUTE ON FUNCTION public.webhook_event_fail(text, text, jsonb, text, integer, boolean) TO service_role;
        GRANT SELECT ON public.error_retry_policy TO service_role;
        GRANT SELECT, INSERT, UPDATE ON public.webhook_event_attempts TO service_role;
    END IF;
END
$$;
