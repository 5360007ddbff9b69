-- Event tracking: three functions a webhook handler calls, in any language (psycopg,
-- supabase-js rpc, psql), so every delivery is recorded correctly under duplicates,
-- concurrent deliveries, crashed workers and retries.
--
--   webhook_event_begin    record the event and decide: process | skip_duplicate | retry_later
--   webhook_event_complete the attempt succeeded (call it in the same transaction as the work)
--   webhook_event_fail     the attempt failed: message, category and structured details
--
-- Commit begin's transaction before doing the work: the committed 'processing' row is what
-- tells a concurrent delivery of the same event to back off, and what is left behind (and
-- later reclaimed) when a worker dies mid-way.
--
-- Supabase: the functions live in public (so supabase-js can call them with rpc), run as
-- the caller (SECURITY INVOKER, so row-level security still applies: the service_role key
-- works, anon and authenticated do not) and pin an empty search_path with schema-qualified
-- names, so nothing on the caller's path can stand in for the tables.

-- What the handler did with the event, e.g. 'registration_completed' or 'ignored'.
ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS outcome text;
-- The registration the event touched, for drill-down from either side.
ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS registration_id uuid;
ALTER TABLE webhook_events_archive ADD COLUMN IF NOT EXISTS outcome text;
ALTER TABLE webhook_events_archive ADD COLUMN IF NOT EXISTS registration_id uuid;
CREATE INDEX IF NOT EXISTS webhook_events_registration_idx
    ON webhook_events (registration_id) WHERE registration_id IS NOT NULL;


CREATE OR REPLACE FUNCTION public.webhook_event_begin(
    p_stripe_event_id   text,
    p_event_type        text,
    p_payload           jsonb,
    p_stripe_created_at timestamptz DEFAULT NULL,
    p_livemode          boolean DEFAULT false,
    p_stale_after       interval DEFAULT interval '5 minutes'
)
RETURNS TABLE (decision text, attempt integer, previous_status text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
-- Record a delivery and decide, atomically, what this caller should do with it:
--   process        new event, a failed one, or one whose worker went silent longer than
--                  p_stale_after; the row is now 'processing' and 'attempt' is this
--                  caller's attempt number (pass it to complete/fail)
--   skip_duplicate already completed: answer 2xx and do nothing
--   retry_later    another worker is processing it right now: answer non-2xx so Stripe
--                  delivers it again later
DECLARE
    v_status  text;
    v_started timestamptz;
    v_attempt integer;
BEGIN
    IF p_stripe_event_id IS NULL OR btrim(p_stripe_event_id) = '' THEN
        RAISE EXCEPTION 'webhook_event_begin: p_stripe_event_id is required'
            USING ERRCODE = '22023';
    END IF;

    -- A concurrent insert of the same id makes this wait for that transaction, then do
    -- nothing; the row lock below then serialises every decision about the event.
    INSERT INTO public.webhook_events AS e
        (stripe_event_id, event_type, processing_status, payload, attempts,
         stripe_created_at, livemode, processing_started_at, updated_at)
    VALUES
        (p_stripe_event_id, p_event_type, 'processing', p_payload, 1,
         p_stripe_created_at, coalesce(p_livemode, false), clock_timestamp(), clock_timestamp())
    ON CONFLICT (stripe_event_id) DO NOTHING;
    IF FOUND THEN
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

    -- pending (recorded but never started), failed, or processing by a worker that went
    -- silent: this caller takes it over. The last error stays visible until complete.
    UPDATE public.webhook_events AS e
       SET processing_status     = 'processing',
           attempts              = e.attempts + 1,
           processing_started_at = clock_timestamp(),
           updated_at            = clock_timestamp()
     WHERE e.stripe_event_id = p_stripe_event_id
    RETURNING e.attempts INTO v_attempt;
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
           updated_at             = clock_timestamp()
     WHERE e.stripe_event_id = p_stripe_event_id
       AND e.processing_status = 'processing'
       AND (p_attempt IS NULL OR e.attempts = p_attempt);
    RETURN FOUND;
END
$$;


CREATE OR REPLACE FUNCTION public.webhook_event_fail(
    p_stripe_event_id text,
    p_error_message   text,
    p_error_details   jsonb DEFAULT NULL,
    p_error_category  text DEFAULT NULL,
    p_attempt         integer DEFAULT NULL
)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
-- Mark the attempt failed with its error. A category outside the allowed set is stored as
-- 'unknown' (the one given is kept in the details) rather than losing the failure record.
-- Returns false when the event is not 'processing' or another worker has reclaimed it.
DECLARE
    v_category text := coalesce(p_error_category, 'unknown');
    v_details  jsonb := p_error_details;
BEGIN
    IF v_category NOT IN ('network', 'validation', 'database', 'stripe', 'unknown') THEN
        v_details := coalesce(v_details, '{}'::jsonb)
                     || jsonb_build_object('requested_category', p_error_category);
        v_category := 'unknown';
    END IF;
    UPDATE public.webhook_events AS e
       SET processing_status      = 'failed',
           processed_at           = clock_timestamp(),
           processing_duration_ms = greatest(0, round(extract(epoch FROM clock_timestamp()
                                        - coalesce(e.processing_started_at, e.created_at)) * 1000))::integer,
           error_message          = left(coalesce(nullif(btrim(p_error_message), ''), 'unspecified error'), 2000),
           error_category         = v_category,
           error_details          = v_details,
           updated_at             = clock_timestamp()
     WHERE e.stripe_event_id = p_stripe_event_id
       AND e.processing_status = 'processing'
       AND (p_attempt IS NULL OR e.attempts = p_attempt);
    RETURN FOUND;
END
$$;


-- Only roles that may write webhook_events should call these. Supabase grants EXECUTE on
-- new public functions to anon and authenticated by default; take that back (row-level
-- security would stop them anyway) and keep service_role, which Edge Functions use.
REVOKE EXECUTE ON FUNCTION public.webhook_event_begin(text, text, jsonb, timestamptz, boolean, interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION public.webhook_event_complete(text, text, uuid, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION public.webhook_event_fail(text, text, jsonb, text, integer) FROM PUBLIC;
DO $$
DECLARE
    api_role text;
BEGIN
    FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = api_role) THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION public.webhook_event_begin(text, text, jsonb, timestamptz, boolean, interval) FROM %I', api_role);
            EXECUTE format('REVOKE EXECUTE ON FUNCTION public.webhook_event_complete(text, text, uuid, integer) FROM %I', api_role);
            EXECUTE format('REVOKE EXECUTE ON FUNCTION public.webhook_event_fail(text, text, jsonb, text, integer) FROM %I', api_role);
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION public.webhook_event_begin(text, text, jsonb, timestamptz, boolean, interval) TO service_role;
        GRANT EXECUTE ON FUNCTION public.webhook_event_complete(text, text, uuid, integer) TO service_role;
        GRANT EXECUTE ON FUNCTION public.webhook_event_fail(text, text, jsonb, text, integer) TO service_role;
    END IF;
END
$$;
