-- The registration rollups: the Funnel page's and the report's registration aggregates at a
-- cost flat in the size of the history, kept by triggers on registrations and on the paid
-- Checkout Session events of webhook_events (tables described in
-- migrations/0179_baseline.sql). A function file (see tracking.sql).

-- Completion-time bins, over milliseconds as the duration bins of webhook_duration_bin: bin 0
-- holds times under 1 ms; bin k >= 1 holds times t with 1.05^(k-1) <= t < 1.05^k ms (1 s is
-- bin 142, 1 h bin 310, 30 days bin 445). A percentile read from the histogram is the
-- geometric middle of its bin: within 2.5 % of the exact value.
CREATE OR REPLACE FUNCTION public.registration_completion_bin(p_seconds double precision)
RETURNS smallint
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT CASE WHEN p_seconds IS NULL THEN NULL
            WHEN p_seconds * 1000 < 1 THEN 0
            ELSE 1 + floor(ln(p_seconds * 1000) / ln(1.05))::integer END::smallint
$$;

-- The representative time of a bin in seconds (its geometric middle; 0 for bin 0).
CREATE OR REPLACE FUNCTION public.registration_completion_bin_value(p_bin integer)
RETURNS double precision
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT CASE WHEN p_bin <= 0 THEN 0::double precision
            ELSE power(1.05::double precision, p_bin - 0.5) / 1000 END
$$;

-- The session an event pays for (its Checkout Session id), or null when it is not a paid
-- Checkout Session event.
CREATE OR REPLACE FUNCTION public.checkout_paid_session(p_event_type text, p_payload jsonb)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT CASE WHEN p_event_type = 'checkout.session.async_payment_succeeded'
                 OR (p_event_type = 'checkout.session.completed'
                     AND p_payload -> 'data' -> 'object' ->> 'payment_status' = 'paid')
            THEN p_payload -> 'data' -> 'object' ->> 'id' END
$$;

-- Whether a paid Checkout Session event is recorded for session p_session_id: one primary
-- key probe. The condition is the Funnel's "paid" step (queries/funnel.sql).
CREATE OR REPLACE FUNCTION public.registration_session_paid(p_session_id text)
RETURNS boolean
LANGUAGE sql
STABLE
AS $$
SELECT p_session_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM public.checkout_paid_sessions p WHERE p.session_id = p_session_id)
$$;

-- Append one change for a registration row as it is (or was), with its "paid" flag given.
CREATE OR REPLACE FUNCTION public.registration_rollup_append(
    p_sign integer, p_created_at timestamptz, p_session_id text, p_status text,
    p_completed_at timestamptz, p_currency text, p_amount_total integer, p_paid boolean)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = ''
AS $$
INSERT INTO public.registration_rollup_delta
    (sign, bucket, has_session, completed, paid, completion_bin, completed_bucket, currency, amount_total)
VALUES (p_sign, date_trunc('hour', p_created_at, 'UTC'), p_session_id IS NOT NULL,
        p_status = 'completed', p_session_id IS NOT NULL AND p_paid,
        CASE WHEN p_status = 'completed' AND p_completed_at IS NOT NULL
             THEN public.registration_completion_bin(extract(epoch FROM p_completed_at - p_created_at)::double precision) END,
        CASE WHEN p_status = 'completed' THEN date_trunc('hour', p_completed_at, 'UTC') END,
        coalesce(lower(p_currency), ''), p_amount_total)
$$;

-- Fold the pending changes into the rollups, in one statement, one folder at a time.
-- Returns how many changes it folded.
CREATE OR REPLACE FUNCTION public.registration_rollup_fold()
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('registration_rollup_fold')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM public.registration_rollup_delta RETURNING *
    ), funnel AS (
        INSERT INTO public.registration_funnel_rollup AS r (bucket, has_session, completed, paid, registrations)
        SELECT bucket, has_session, completed, paid, sum(sign)
        FROM taken
        GROUP BY 1, 2, 3, 4
        HAVING sum(sign) <> 0
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (bucket, has_session, completed, paid) DO UPDATE
           SET registrations = r.registrations + excluded.registrations
        RETURNING 1
    ), timed AS (
        INSERT INTO public.registration_completion_rollup AS r (bucket, bin, registrations)
        SELECT bucket, completion_bin, sum(sign)
        FROM taken
        WHERE completion_bin IS NOT NULL
        GROUP BY 1, 2
        HAVING sum(sign) <> 0
        ORDER BY 1, 2
        ON CONFLICT (bucket, bin) DO UPDATE SET registrations = r.registrations + excluded.registrations
        RETURNING 1
    ), timed_daily AS (
        INSERT INTO public.registration_completion_daily AS r (bucket, bin, registrations)
        SELECT date_trunc('day', bucket, 'UTC'), completion_bin, sum(sign)
        FROM taken
        WHERE completion_bin IS NOT NULL
        GROUP BY 1, 2
        HAVING sum(sign) <> 0
        ORDER BY 1, 2
        ON CONFLICT (bucket, bin) DO UPDATE SET registrations = r.registrations + excluded.registrations
        RETURNING 1
    ), paid AS (
        INSERT INTO public.registration_payment_rollup AS r (bucket, currency, registrations, amounts, amount_total)
        SELECT completed_bucket, currency, sum(sign), coalesce(sum(sign) FILTER (WHERE amount_total IS NOT NULL), 0),
               coalesce(sum(sign * amount_total), 0)
        FROM taken
        WHERE completed_bucket IS NOT NULL
        GROUP BY 1, 2
        HAVING sum(sign) <> 0 OR coalesce(sum(sign * amount_total), 0) <> 0
               OR coalesce(sum(sign) FILTER (WHERE amount_total IS NOT NULL), 0) <> 0
        ORDER BY 1, 2
        ON CONFLICT (bucket, currency) DO UPDATE
           SET registrations = r.registrations + excluded.registrations,
               amounts       = r.amounts + excluded.amounts,
               amount_total  = r.amount_total + excluded.amount_total
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM taken) + 0 * (SELECT count(*) FROM funnel) + 0 * (SELECT count(*) FROM timed)
           + 0 * (SELECT count(*) FROM timed_daily) + 0 * (SELECT count(*) FROM paid)
      INTO v_folded;
    RETURN v_folded;
END
$$;

-- Recompute the three rollups from the rows, set-based: after
-- a bulk load that ran with the triggers disabled (demo-data), and after webhook_events is
-- emptied; checkout_paid_sessions too. Takes both tables' SHARE locks, so nothing they count changes meanwhile.
CREATE OR REPLACE FUNCTION public.registration_rollup_rebuild(p_rebuild_key boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    LOCK TABLE public.registrations IN SHARE MODE;
    LOCK TABLE public.webhook_events IN SHARE MODE;
    -- The sessions' primary key is built once after they are in (a sort), not entry by entry;
    -- not from the events' TRUNCATE trigger (p_rebuild_key false), where the table may be
    -- open in the very TRUNCATE statement.
    IF p_rebuild_key THEN
        TRUNCATE public.checkout_paid_sessions;
        ALTER TABLE public.checkout_paid_sessions DROP CONSTRAINT checkout_paid_sessions_pkey;
    ELSE
        DELETE FROM public.checkout_paid_sessions;
    END IF;
    DELETE FROM public.registration_rollup_delta;
    DELETE FROM public.registration_funnel_rollup;
    DELETE FROM public.registration_completion_rollup;
    DELETE FROM public.registration_completion_daily;
    DELETE FROM public.registration_payment_rollup;
    INSERT INTO public.checkout_paid_sessions (session_id, events)
    SELECT public.checkout_paid_session(e.event_type, e.payload), count(*)
    FROM public.webhook_events e
    WHERE e.event_type IN ('checkout.session.completed', 'checkout.session.async_payment_succeeded')
      AND public.checkout_paid_session(e.event_type, e.payload) IS NOT NULL
    GROUP BY 1;
    IF p_rebuild_key THEN
        ALTER TABLE public.checkout_paid_sessions ADD CONSTRAINT checkout_paid_sessions_pkey PRIMARY KEY (session_id);
    END IF;
    INSERT INTO public.registration_funnel_rollup (bucket, has_session, completed, paid, registrations)
    SELECT date_trunc('hour', created_at, 'UTC'), has_session, completed, paid, count(*)
    FROM (
        SELECT r.created_at, r.stripe_checkout_session_id IS NOT NULL AS has_session, true AS completed,
               r.stripe_checkout_session_id IS NOT NULL AS paid
        FROM public.registrations r
        WHERE r.processing_status = 'completed'
        UNION ALL
        -- Only the registrations not completed look their session up (the smaller side hashed).
        SELECT r.created_at, r.stripe_checkout_session_id IS NOT NULL, false, p.session_id IS NOT NULL
        FROM public.registrations r
        LEFT JOIN public.checkout_paid_sessions p ON p.session_id = r.stripe_checkout_session_id
        WHERE r.processing_status <> 'completed'
    ) g
    GROUP BY 1, 2, 3, 4;
    INSERT INTO public.registration_completion_rollup (bucket, bin, registrations)
    SELECT date_trunc('hour', created_at, 'UTC'),
           public.registration_completion_bin(extract(epoch FROM completed_at - created_at)::double precision),
           count(*)
    FROM public.registrations
    WHERE processing_status = 'completed' AND completed_at IS NOT NULL
    GROUP BY 1, 2;
    INSERT INTO public.registration_completion_daily (bucket, bin, registrations)
    SELECT date_trunc('day', bucket, 'UTC'), bin, sum(registrations)
    FROM public.registration_completion_rollup
    GROUP BY 1, 2;
    INSERT INTO public.registration_payment_rollup (bucket, currency, registrations, amounts, amount_total)
    SELECT date_trunc('hour', completed_at, 'UTC'), coalesce(lower(currency), ''), count(*), count(amount_total),
           coalesce(sum(amount_total), 0)
    FROM public.registrations
    WHERE processing_status = 'completed' AND completed_at IS NOT NULL
    GROUP BY 1, 2;
END
$$;

CREATE OR REPLACE FUNCTION public.registration_rollup_maintain()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
-- Per registration row: -1 for the old row's key, +1 for the new row's; nothing when an
-- update leaves every rolled-up column as it was (an e-mail fixed, updated_at). The old
-- row's "paid" flag is read as it is now: the events' trigger keeps it current.
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM public.registration_funnel_rollup;
        DELETE FROM public.registration_completion_rollup;
    DELETE FROM public.registration_completion_daily;
        DELETE FROM public.registration_payment_rollup;
        DELETE FROM public.registration_rollup_delta;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE'
       AND OLD.created_at = NEW.created_at
       AND OLD.stripe_checkout_session_id IS NOT DISTINCT FROM NEW.stripe_checkout_session_id
       AND OLD.processing_status = NEW.processing_status
       AND OLD.completed_at IS NOT DISTINCT FROM NEW.completed_at
       AND OLD.currency IS NOT DISTINCT FROM NEW.currency
       AND OLD.amount_total IS NOT DISTINCT FROM NEW.amount_total THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM public.registration_rollup_append(
            -1, OLD.created_at, OLD.stripe_checkout_session_id, OLD.processing_status, OLD.completed_at,
            OLD.currency, OLD.amount_total,
            OLD.processing_status = 'completed' OR public.registration_session_paid(OLD.stripe_checkout_session_id));
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM public.registration_rollup_append(
            1, NEW.created_at, NEW.stripe_checkout_session_id, NEW.processing_status, NEW.completed_at,
            NEW.currency, NEW.amount_total,
            NEW.processing_status = 'completed' OR public.registration_session_paid(NEW.stripe_checkout_session_id));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.registration_rollup_paid_event()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
-- A paid Checkout Session event recorded, changed or removed (archival, a delete by hand):
-- its session's count in checkout_paid_sessions moves; when the session gets its first paid
-- event or loses its last, the registration of that session, when not completed, moves
-- between the "paid" keys.
DECLARE
    v_old     text;
    v_new     text;
    v_session text;
    v_sign    integer;
    v_events  integer;
    r         record;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM public.checkout_paid_sessions;
        IF EXISTS (SELECT 1 FROM public.registrations) THEN
            PERFORM public.registration_rollup_rebuild(false);
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_old := public.checkout_paid_session(OLD.event_type, OLD.payload);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        v_new := public.checkout_paid_session(NEW.event_type, NEW.payload);
    END IF;
    IF v_old IS NOT DISTINCT FROM v_new THEN
        RETURN NULL;  -- a status change of a checkout event: the usual case, nothing to do
    END IF;
    FOR v_session, v_sign IN
        SELECT c.session_id, c.sign FROM (VALUES (v_old, -1), (v_new, 1)) AS c (session_id, sign)
        WHERE c.session_id IS NOT NULL
    LOOP
        IF v_sign = 1 THEN
            INSERT INTO public.checkout_paid_sessions AS p (session_id, events) VALUES (v_session, 1)
            ON CONFLICT (session_id) DO UPDATE SET events = p.events + 1
            RETURNING p.events INTO v_events;
            CONTINUE WHEN v_events <> 1;       -- the session was paid already
        ELSE
            UPDATE public.checkout_paid_sessions AS p SET events = p.events - 1
            WHERE p.session_id = v_session
            RETURNING p.events INTO v_events;
            CONTINUE WHEN v_events IS NULL OR v_events > 0;  -- still paid by another event
            DELETE FROM public.checkout_paid_sessions AS p WHERE p.session_id = v_session;
        END IF;
        FOR r IN
            SELECT g.created_at, g.stripe_checkout_session_id, g.processing_status, g.completed_at,
                   g.currency, g.amount_total
            FROM public.registrations g
            WHERE g.stripe_checkout_session_id = v_session AND g.processing_status <> 'completed'
            -- Waits for a transaction changing the registration right now (completing it, say),
            -- then sees it as that one left it: that one's trigger read the session as it was.
            FOR UPDATE
        LOOP
            PERFORM public.registration_rollup_append(
                -1, r.created_at, r.stripe_checkout_session_id, r.processing_status, r.completed_at,
                r.currency, r.amount_total, v_sign < 0);
            PERFORM public.registration_rollup_append(
                1, r.created_at, r.stripe_checkout_session_id, r.processing_status, r.completed_at,
                r.currency, r.amount_total, v_sign > 0);
        END LOOP;
    END LOOP;
    RETURN NULL;
END
$$;

-- Folding, once per statement that changed registrations, with a probability of 1 in 100.
CREATE OR REPLACE FUNCTION public.registration_rollup_fold_sometimes()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF random() < 0.01 THEN
        PERFORM public.registration_rollup_fold();
    END IF;
    RETURN NULL;
END
$$;

-- [start, end) of registrations by created_at, in the funnel rollup's shape: the rollup rows
-- (and pending changes) of its whole hours, plus the raw rows of its partial edge hours with
-- their "paid" flag looked up in checkout_paid_sessions (two index ranges, as webhook_window_counts reads them). A sum over
-- the result is a count over registrations.
CREATE OR REPLACE FUNCTION public.registration_funnel_counts(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (bucket timestamptz, has_session boolean, completed boolean, paid boolean, registrations bigint)
LANGUAGE sql
STABLE
AS $$
SELECT r.bucket, r.has_session, r.completed, r.paid, r.registrations
FROM public.registration_funnel_rollup r
WHERE r.bucket >= public.webhook_rollup_full_from(p_start) AND r.bucket < public.webhook_utc_hour(p_end)
  AND r.registrations <> 0
UNION ALL
SELECT d.bucket, d.has_session, d.completed, d.paid, sum(d.sign)
FROM public.registration_rollup_delta d
WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < public.webhook_utc_hour(p_end)
GROUP BY 1, 2, 3, 4
UNION ALL
SELECT date_trunc('hour', g.created_at, 'UTC'), g.stripe_checkout_session_id IS NOT NULL,
       g.processing_status = 'completed',
       g.stripe_checkout_session_id IS NOT NULL
           AND (g.processing_status = 'completed' OR EXISTS (
                    SELECT 1 FROM public.checkout_paid_sessions p WHERE p.session_id = g.stripe_checkout_session_id)),
       count(*)
FROM (
    SELECT created_at, stripe_checkout_session_id, processing_status
    FROM public.registrations
    WHERE created_at >= p_start AND created_at < least(public.webhook_rollup_full_from(p_start), p_end)
    UNION ALL
    SELECT created_at, stripe_checkout_session_id, processing_status
    FROM public.registrations
    WHERE created_at >= greatest(public.webhook_utc_hour(p_end), public.webhook_rollup_full_from(p_start))
      AND created_at < p_end
) g
GROUP BY 1, 2, 3, 4
$$;

CREATE OR REPLACE FUNCTION public.registration_completion_window(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (bin smallint, registrations bigint)
LANGUAGE sql
STABLE
AS $$
WITH edges AS (
    SELECT public.webhook_rollup_full_from(p_start)           AS hour_from,
           public.webhook_utc_hour(p_end)                    AS hour_to,
           public.webhook_rollup_day_from(p_start)           AS day_from,
           public.webhook_utc_day(p_end)                     AS day_to
), days AS (
    -- No whole day: day_from = day_to = hour_to, and the hours cover everything.
    SELECT hour_from, hour_to,
           CASE WHEN day_from < day_to THEN day_from ELSE hour_to END AS day_from,
           CASE WHEN day_from < day_to THEN day_to ELSE hour_to END AS day_to
    FROM edges
)
SELECT bin, sum(registrations)::bigint
FROM (
    SELECT r.bin, r.registrations
    FROM public.registration_completion_daily r, days w
    WHERE r.bucket >= w.day_from AND r.bucket < w.day_to
    UNION ALL
    SELECT r.bin, r.registrations
    FROM public.registration_completion_rollup r, days w
    WHERE r.bucket >= w.hour_from AND r.bucket < least(w.day_from, w.hour_to)
    UNION ALL
    SELECT r.bin, r.registrations
    FROM public.registration_completion_rollup r, days w
    WHERE r.bucket >= greatest(w.day_to, w.hour_from) AND r.bucket < w.hour_to
    UNION ALL
    SELECT d.completion_bin, d.sign
    FROM public.registration_rollup_delta d
    WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < public.webhook_utc_hour(p_end)
      AND d.completion_bin IS NOT NULL
    UNION ALL
    SELECT public.registration_completion_bin(extract(epoch FROM g.completed_at - g.created_at)::double precision), 1
    FROM public.registrations g
    WHERE g.created_at >= p_start AND g.created_at < least(public.webhook_rollup_full_from(p_start), p_end)
      AND g.processing_status = 'completed' AND g.completed_at IS NOT NULL
    UNION ALL
    SELECT public.registration_completion_bin(extract(epoch FROM g.completed_at - g.created_at)::double precision), 1
    FROM public.registrations g
    WHERE g.created_at >= greatest(public.webhook_utc_hour(p_end), public.webhook_rollup_full_from(p_start))
      AND g.created_at < p_end AND g.processing_status = 'completed' AND g.completed_at IS NOT NULL
) parts
GROUP BY 1
HAVING sum(registrations) <> 0
$$;

-- The registrations completed in [start, end) by completed_at, per lower(currency) ('' when
-- none): (currency, registrations, amounts, amount_total), the same way.
CREATE OR REPLACE FUNCTION public.registration_payment_window(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (currency text, registrations bigint, amounts bigint, amount_total bigint)
LANGUAGE sql
STABLE
AS $$
SELECT currency, sum(registrations)::bigint, sum(amounts)::bigint, sum(amount_total)::bigint
FROM (
    SELECT r.currency, r.registrations, r.amounts, r.amount_total
    FROM public.registration_payment_rollup r
    WHERE r.bucket >= public.webhook_rollup_full_from(p_start) AND r.bucket < public.webhook_utc_hour(p_end)
    UNION ALL
    SELECT d.currency, d.sign, CASE WHEN d.amount_total IS NOT NULL THEN d.sign ELSE 0 END,
           coalesce(d.sign * d.amount_total, 0)
    FROM public.registration_rollup_delta d
    WHERE d.completed_bucket >= public.webhook_rollup_full_from(p_start)
      AND d.completed_bucket < public.webhook_utc_hour(p_end)
    UNION ALL
    SELECT coalesce(lower(g.currency), ''), 1, CASE WHEN g.amount_total IS NOT NULL THEN 1 ELSE 0 END,
           coalesce(g.amount_total, 0)
    FROM public.registrations g
    WHERE g.processing_status = 'completed'
      AND g.completed_at >= p_start AND g.completed_at < least(public.webhook_rollup_full_from(p_start), p_end)
    UNION ALL
    SELECT coalesce(lower(g.currency), ''), 1, CASE WHEN g.amount_total IS NOT NULL THEN 1 ELSE 0 END,
           coalesce(g.amount_total, 0)
    FROM public.registrations g
    WHERE g.processing_status = 'completed'
      AND g.completed_at >= greatest(public.webhook_utc_hour(p_end), public.webhook_rollup_full_from(p_start))
      AND g.completed_at < p_end
) parts
GROUP BY 1
HAVING sum(registrations) <> 0
$$;

CREATE OR REPLACE TRIGGER registrations_rollup AFTER INSERT OR UPDATE OR DELETE ON registrations
    FOR EACH ROW EXECUTE FUNCTION public.registration_rollup_maintain();

CREATE OR REPLACE TRIGGER registrations_rollup_truncate AFTER TRUNCATE ON registrations
    FOR EACH STATEMENT EXECUTE FUNCTION public.registration_rollup_maintain();

-- Only the two paid event types wake the events' trigger (a WHEN clause, checked without
-- calling the function): the receiver's other inserts and updates do not pay for it.
CREATE OR REPLACE TRIGGER webhook_events_registration_paid AFTER INSERT ON webhook_events
    FOR EACH ROW
    WHEN (NEW.event_type IN ('checkout.session.completed', 'checkout.session.async_payment_succeeded'))
    EXECUTE FUNCTION public.registration_rollup_paid_event();

CREATE OR REPLACE TRIGGER webhook_events_registration_paid_update AFTER UPDATE ON webhook_events
    FOR EACH ROW
    WHEN ((OLD.event_type IN ('checkout.session.completed', 'checkout.session.async_payment_succeeded')
           OR NEW.event_type IN ('checkout.session.completed', 'checkout.session.async_payment_succeeded'))
          AND (OLD.event_type IS DISTINCT FROM NEW.event_type OR OLD.payload IS DISTINCT FROM NEW.payload
               OR OLD.id IS DISTINCT FROM NEW.id))
    EXECUTE FUNCTION public.registration_rollup_paid_event();

CREATE OR REPLACE TRIGGER webhook_events_registration_paid_delete AFTER DELETE ON webhook_events
    FOR EACH ROW
    WHEN (OLD.event_type IN ('checkout.session.completed', 'checkout.session.async_payment_succeeded'))
    EXECUTE FUNCTION public.registration_rollup_paid_event();

CREATE OR REPLACE TRIGGER webhook_events_registration_paid_truncate AFTER TRUNCATE ON webhook_events
    FOR EACH STATEMENT EXECUTE FUNCTION public.registration_rollup_paid_event();

CREATE OR REPLACE TRIGGER registrations_rollup_fold AFTER INSERT OR UPDATE OR DELETE ON registrations
    FOR EACH STATEMENT EXECUTE FUNCTION public.registration_rollup_fold_sometimes();

-- Callable by their owner only (_privileges.sql says why).
SELECT public.webhook_monitor_callable_by(ARRAY[
        'public.registration_completion_bin(double precision)',
        'public.registration_completion_bin_value(integer)',
        'public.checkout_paid_session(text, jsonb)',
        'public.registration_session_paid(text)',
        'public.registration_rollup_append(integer, timestamptz, text, text, timestamptz, text, integer, boolean)',
        'public.registration_rollup_fold()',
        'public.registration_rollup_rebuild(boolean)',
        'public.registration_rollup_maintain()',
        'public.registration_rollup_paid_event()',
        'public.registration_rollup_fold_sometimes()',
        'public.registration_funnel_counts(timestamptz, timestamptz)',
        'public.registration_completion_window(timestamptz, timestamptz)',
        'public.registration_payment_window(timestamptz, timestamptz)'
]::regprocedure[]);
