-- A daily level for the event rollups (issue 14): a window's whole UTC days are read from
-- per-day rows, as the error rollups (0130, webhook_error_event_rollup_daily) and the
-- completion histogram (0135, registration_completion_daily) already are. At 10M events a
-- 30-day window read 720 hourly rows per key of webhook_event_rollup (72k rows) and of
-- webhook_event_duration_rollup (167k rows); it now reads 30 per key, plus the hours of
-- its partial first and last day.
--
-- * webhook_event_rollup_daily, webhook_event_duration_rollup_daily: the same counts as the
--   hourly tables of migrations/0110_event_rollups.sql, per UTC day (date_trunc('day',
--   created_at, 'UTC'); a UTC day is always 24 hours, whatever the session's time zone).
-- * Kept exact by the same fold: webhook_rollup_fold() adds each batch of pending changes
--   to the hourly and to the daily tables in one statement, so both levels always hold the
--   same folded changes and readers add the same pending ones (late and out-of-order
--   updates, retries, reclaims, archival and deletes reach a day as they reach its hour).
--   TRUNCATE empties both levels; webhook_rollup_rebuild() rebuilds both.
-- * webhook_window_counts(start, end) and webhook_duration_window(start, end) read whole
--   UTC days from the daily tables, the whole hours of the window's partial days from the
--   hourly tables, pending changes, and the partial edge hours from the rows. A row of
--   webhook_window_counts now covers an hour or a whole UTC day: its `bucket` is the start
--   of what it covers, so callers may group it by day (or coarser), not by hour.
--   webhook_window_counts_hourly(start, end) is the former function, hour by hour, for
--   the charts with hourly buckets.
-- * The example message of a day is the least of its hours' examples (the least message
--   seen in that day), so the least example over a window is what it was.

CREATE TABLE IF NOT EXISTS webhook_event_rollup_daily (
    day               timestamptz NOT NULL,           -- date_trunc('day', created_at, 'UTC')
    event_type        text NOT NULL,
    processing_status text NOT NULL,
    error_category    text NOT NULL DEFAULT '',
    error_fingerprint text NOT NULL DEFAULT '',
    events            bigint NOT NULL DEFAULT 0,
    retried           bigint NOT NULL DEFAULT 0,
    example           text,
    PRIMARY KEY (day, event_type, processing_status, error_category, error_fingerprint)
);

CREATE TABLE IF NOT EXISTS webhook_event_duration_rollup_daily (
    day               timestamptz NOT NULL,
    processing_status text NOT NULL,
    bin               smallint NOT NULL,
    events            bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, processing_status, bin)
);

ALTER TABLE webhook_event_rollup_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_event_duration_rollup_daily ENABLE ROW LEVEL SECURITY;

-- 0110's fold, now also adding each change to its UTC day.
CREATE OR REPLACE FUNCTION public.webhook_rollup_fold()
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('webhook_rollup_fold')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM public.webhook_event_rollup_delta RETURNING *
    ), counted AS (
        INSERT INTO public.webhook_event_rollup AS r
            (bucket, event_type, processing_status, error_category, error_fingerprint, events, retried, example)
        SELECT bucket, event_type, processing_status, error_category, error_fingerprint,
               sum(sign), coalesce(sum(sign) FILTER (WHERE retried), 0), min(example)
        FROM taken
        GROUP BY 1, 2, 3, 4, 5
        HAVING sum(sign) <> 0 OR coalesce(sum(sign) FILTER (WHERE retried), 0) <> 0 OR min(example) IS NOT NULL
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (bucket, event_type, processing_status, error_category, error_fingerprint) DO UPDATE
           SET events  = r.events + excluded.events,
               retried = r.retried + excluded.retried,
               example = coalesce(least(r.example, excluded.example), r.example, excluded.example)
        RETURNING 1
    ), counted_days AS (
        INSERT INTO public.webhook_event_rollup_daily AS r
            (day, event_type, processing_status, error_category, error_fingerprint, events, retried, example)
        SELECT date_trunc('day', bucket, 'UTC'), event_type, processing_status, error_category, error_fingerprint,
               sum(sign), coalesce(sum(sign) FILTER (WHERE retried), 0), min(example)
        FROM taken
        GROUP BY 1, 2, 3, 4, 5
        HAVING sum(sign) <> 0 OR coalesce(sum(sign) FILTER (WHERE retried), 0) <> 0 OR min(example) IS NOT NULL
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (day, event_type, processing_status, error_category, error_fingerprint) DO UPDATE
           SET events  = r.events + excluded.events,
               retried = r.retried + excluded.retried,
               example = coalesce(least(r.example, excluded.example), r.example, excluded.example)
        RETURNING 1
    ), timed AS (
        INSERT INTO public.webhook_event_duration_rollup AS r (bucket, processing_status, bin, events)
        SELECT bucket, processing_status, duration_bin, sum(sign)
        FROM taken
        WHERE duration_bin IS NOT NULL
        GROUP BY 1, 2, 3
        HAVING sum(sign) <> 0
        ORDER BY 1, 2, 3
        ON CONFLICT (bucket, processing_status, bin) DO UPDATE SET events = r.events + excluded.events
        RETURNING 1
    ), timed_days AS (
        INSERT INTO public.webhook_event_duration_rollup_daily AS r (day, processing_status, bin, events)
        SELECT date_trunc('day', bucket, 'UTC'), processing_status, duration_bin, sum(sign)
        FROM taken
        WHERE duration_bin IS NOT NULL
        GROUP BY 1, 2, 3
        HAVING sum(sign) <> 0
        ORDER BY 1, 2, 3
        ON CONFLICT (day, processing_status, bin) DO UPDATE SET events = r.events + excluded.events
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM taken) + 0 * (SELECT count(*) FROM counted) + 0 * (SELECT count(*) FROM timed)
           + 0 * (SELECT count(*) FROM counted_days) + 0 * (SELECT count(*) FROM timed_days)
      INTO v_folded;
    RETURN v_folded;
END
$$;
REVOKE EXECUTE ON FUNCTION public.webhook_rollup_fold() FROM PUBLIC;

-- The daily level from the hourly one, set-based (the hourly tables are a few hundred rows
-- per hour at most, whatever the number of events).
CREATE OR REPLACE FUNCTION public.webhook_rollup_fill_daily()
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    DELETE FROM public.webhook_event_rollup_daily;
    DELETE FROM public.webhook_event_duration_rollup_daily;
    INSERT INTO public.webhook_event_rollup_daily
        (day, event_type, processing_status, error_category, error_fingerprint, events, retried, example)
    SELECT date_trunc('day', bucket, 'UTC'), event_type, processing_status, error_category, error_fingerprint,
           sum(events), sum(retried), min(example)
    FROM public.webhook_event_rollup
    GROUP BY 1, 2, 3, 4, 5;
    INSERT INTO public.webhook_event_duration_rollup_daily (day, processing_status, bin, events)
    SELECT date_trunc('day', bucket, 'UTC'), processing_status, bin, sum(events)
    FROM public.webhook_event_duration_rollup
    GROUP BY 1, 2, 3;
END
$$;
REVOKE EXECUTE ON FUNCTION public.webhook_rollup_fill_daily() FROM PUBLIC;

-- 0110's rebuild of the event rollups from the rows (webhook_rollup_rebuild() calls it,
-- 0130), now also rebuilding the daily level, from the hourly one.
CREATE OR REPLACE FUNCTION public.webhook_rollup_rebuild_events()
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    LOCK TABLE public.webhook_events IN SHARE MODE;
    DELETE FROM public.webhook_event_rollup_delta;
    DELETE FROM public.webhook_event_rollup;
    DELETE FROM public.webhook_event_duration_rollup;
    INSERT INTO public.webhook_event_rollup
        (bucket, event_type, processing_status, error_category, error_fingerprint, events, retried, example)
    SELECT date_trunc('hour', created_at, 'UTC'), event_type, processing_status,
           coalesce(error_category, ''), coalesce(error_fingerprint, ''),
           count(*), count(*) FILTER (WHERE attempts > 1), min(left(error_message, 500))
    FROM public.webhook_events
    GROUP BY 1, 2, 3, 4, 5;
    INSERT INTO public.webhook_event_duration_rollup (bucket, processing_status, bin, events)
    SELECT date_trunc('hour', created_at, 'UTC'), processing_status,
           public.webhook_duration_bin(processing_duration_ms), count(*)
    FROM public.webhook_events
    WHERE processing_duration_ms IS NOT NULL
    GROUP BY 1, 2, 3;
    PERFORM public.webhook_rollup_fill_daily();
END
$$;
REVOKE EXECUTE ON FUNCTION public.webhook_rollup_rebuild_events() FROM PUBLIC;

-- The row trigger function as 0130 left it, TRUNCATE now also emptying the daily level.
CREATE OR REPLACE FUNCTION public.webhook_rollup_maintain()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM public.webhook_event_rollup;
        DELETE FROM public.webhook_event_duration_rollup;
        DELETE FROM public.webhook_event_rollup_daily;
        DELETE FROM public.webhook_event_duration_rollup_daily;
        DELETE FROM public.webhook_event_rollup_delta;
        PERFORM public.webhook_error_rollup_rebuild();
        RETURN NULL;
    END IF;
    -- The error rollups: an event whose failure state, recovery plan, type or times change,
    -- and that has (or gets) webhook_error_events rows, has them rewritten. An event that
    -- completes without having failed costs one index probe.
    IF TG_OP = 'INSERT' THEN
        IF NEW.processing_status = 'failed' OR EXISTS (
                SELECT 1 FROM public.webhook_error_events p WHERE p.stripe_event_id = NEW.stripe_event_id) THEN
            PERFORM public.webhook_error_events_refresh(NEW.stripe_event_id);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF OLD.processing_status = 'failed' OR EXISTS (
                SELECT 1 FROM public.webhook_error_events p WHERE p.stripe_event_id = OLD.stripe_event_id) THEN
            PERFORM public.webhook_error_events_refresh(OLD.stripe_event_id);
        END IF;
    ELSIF OLD.stripe_event_id IS DISTINCT FROM NEW.stripe_event_id
          OR OLD.processing_status IS DISTINCT FROM NEW.processing_status
          OR OLD.next_retry_at IS DISTINCT FROM NEW.next_retry_at
          OR OLD.recovery_action IS DISTINCT FROM NEW.recovery_action
          OR OLD.event_type IS DISTINCT FROM NEW.event_type
          OR OLD.created_at IS DISTINCT FROM NEW.created_at
          OR OLD.processed_at IS DISTINCT FROM NEW.processed_at
          OR OLD.error_fingerprint IS DISTINCT FROM NEW.error_fingerprint
          OR OLD.error_category IS DISTINCT FROM NEW.error_category
          OR OLD.error_message IS DISTINCT FROM NEW.error_message THEN
        IF OLD.processing_status = 'failed' OR NEW.processing_status = 'failed' OR EXISTS (
                SELECT 1 FROM public.webhook_error_events p WHERE p.stripe_event_id = OLD.stripe_event_id) THEN
            PERFORM public.webhook_error_events_refresh(OLD.stripe_event_id);
        END IF;
        IF NEW.stripe_event_id <> OLD.stripe_event_id AND (NEW.processing_status = 'failed' OR EXISTS (
                SELECT 1 FROM public.webhook_error_events p WHERE p.stripe_event_id = NEW.stripe_event_id)) THEN
            PERFORM public.webhook_error_events_refresh(NEW.stripe_event_id);
        END IF;
    END IF;
    IF TG_OP = 'UPDATE'
       AND OLD.created_at = NEW.created_at AND OLD.event_type = NEW.event_type
       AND OLD.processing_status = NEW.processing_status
       AND OLD.error_category IS NOT DISTINCT FROM NEW.error_category
       AND OLD.error_fingerprint IS NOT DISTINCT FROM NEW.error_fingerprint
       AND (OLD.attempts > 1) = (NEW.attempts > 1)
       AND OLD.processing_duration_ms IS NOT DISTINCT FROM NEW.processing_duration_ms THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO public.webhook_event_rollup_delta
            (sign, bucket, event_type, processing_status, error_category, error_fingerprint, retried, duration_bin)
        VALUES (-1, date_trunc('hour', OLD.created_at, 'UTC'), OLD.event_type, OLD.processing_status,
                coalesce(OLD.error_category, ''), coalesce(OLD.error_fingerprint, ''), OLD.attempts > 1,
                public.webhook_duration_bin(OLD.processing_duration_ms));
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO public.webhook_event_rollup_delta
            (sign, bucket, event_type, processing_status, error_category, error_fingerprint, retried,
             duration_bin, example)
        VALUES (1, date_trunc('hour', NEW.created_at, 'UTC'), NEW.event_type, NEW.processing_status,
                coalesce(NEW.error_category, ''), coalesce(NEW.error_fingerprint, ''), NEW.attempts > 1,
                public.webhook_duration_bin(NEW.processing_duration_ms), left(NEW.error_message, 500));
    END IF;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION public.webhook_rollup_maintain() FROM PUBLIC;
-- Fill the daily level for the rows already there, from the hourly level (not from the
-- rows): one pass over webhook_event_rollup and webhook_event_duration_rollup, whose size
-- follows hours × keys, not events. At 10M events (30 days: 72k and 167k hourly rows) this
-- migration took 0.6–1.2 s (tried in a rolled-back transaction, bench/rollup_levels_bench.py). Holding the fold's lock meanwhile, so no fold runs between the
-- read of the hourly tables and this migration's commit (a fold after it adds its changes
-- to both levels; pending changes stay pending for both).
SELECT pg_advisory_xact_lock(hashtext('webhook_rollup_fold'));
SELECT public.webhook_rollup_fill_daily();

-- Whole hours of [start, end): [hs, he), hs = full_from(start), he = end rounded down to the
-- hour. Whole UTC days inside them: [ds, de), ds = hs rounded up to midnight UTC (24 h,
-- 0153), de = he rounded down to midnight UTC; when ds >= de there is none, and the two
-- hourly ranges [hs, least(ds, he)) and [greatest(de, ds), he) cover the whole hours
-- exactly once either way (as webhook_error_event_window reads its levels).

-- The former webhook_window_counts, hour by hour (for charts with hourly buckets).
CREATE OR REPLACE FUNCTION public.webhook_window_counts_hourly(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (bucket timestamptz, event_type text, processing_status text, error_category text,
               error_fingerprint text, events bigint, retried bigint, example text)
LANGUAGE sql
STABLE
AS $$
SELECT r.bucket, r.event_type, r.processing_status, r.error_category, r.error_fingerprint,
       r.events, r.retried, r.example
FROM public.webhook_event_rollup r
WHERE r.bucket >= public.webhook_rollup_full_from(p_start) AND r.bucket < date_trunc('hour', p_end, 'UTC')
  AND (r.events <> 0 OR r.retried <> 0)
UNION ALL
SELECT d.bucket, d.event_type, d.processing_status, d.error_category, d.error_fingerprint,
       sum(d.sign), coalesce(sum(d.sign) FILTER (WHERE d.retried), 0), min(d.example)
FROM public.webhook_event_rollup_delta d
WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < date_trunc('hour', p_end, 'UTC')
GROUP BY 1, 2, 3, 4, 5
UNION ALL
SELECT date_trunc('hour', e.created_at, 'UTC'), e.event_type, e.processing_status,
       coalesce(e.error_category, ''), coalesce(e.error_fingerprint, ''),
       count(*), count(*) FILTER (WHERE e.attempts > 1), min(left(e.error_message, 500))
FROM (
    SELECT created_at, event_type, processing_status, error_category, error_fingerprint, attempts, error_message
    FROM public.webhook_events
    WHERE created_at >= p_start AND created_at < least(public.webhook_rollup_full_from(p_start), p_end)
    UNION ALL
    SELECT created_at, event_type, processing_status, error_category, error_fingerprint, attempts, error_message
    FROM public.webhook_events
    WHERE created_at >= greatest(date_trunc('hour', p_end, 'UTC'), public.webhook_rollup_full_from(p_start))
      AND created_at < p_end
) e
GROUP BY 1, 2, 3, 4, 5
$$;

-- [start, end) in the rollup's shape, a sum of events over it a count over webhook_events:
-- whole UTC days from the daily level (bucket = the day's midnight), the other whole hours
-- from the hourly level, pending changes (per hour), the partial edge hours from the rows.
CREATE OR REPLACE FUNCTION public.webhook_window_counts(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (bucket timestamptz, event_type text, processing_status text, error_category text,
               error_fingerprint text, events bigint, retried bigint, example text)
LANGUAGE sql
STABLE
AS $$
SELECT r.day, r.event_type, r.processing_status, r.error_category, r.error_fingerprint,
       r.events, r.retried, r.example
FROM public.webhook_event_rollup_daily r
WHERE r.day >= public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start))
  AND r.day < date_trunc('day', p_end, 'UTC')
  AND (r.events <> 0 OR r.retried <> 0)
UNION ALL
SELECT r.bucket, r.event_type, r.processing_status, r.error_category, r.error_fingerprint,
       r.events, r.retried, r.example
FROM public.webhook_event_rollup r
WHERE r.bucket >= public.webhook_rollup_full_from(p_start)
  AND r.bucket < least(public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start)),
                       date_trunc('hour', p_end, 'UTC'))
  AND (r.events <> 0 OR r.retried <> 0)
UNION ALL
SELECT r.bucket, r.event_type, r.processing_status, r.error_category, r.error_fingerprint,
       r.events, r.retried, r.example
FROM public.webhook_event_rollup r
WHERE r.bucket >= greatest(date_trunc('day', p_end, 'UTC'),
                           public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start)))
  AND r.bucket < date_trunc('hour', p_end, 'UTC')
  AND (r.events <> 0 OR r.retried <> 0)
UNION ALL
SELECT d.bucket, d.event_type, d.processing_status, d.error_category, d.error_fingerprint,
       sum(d.sign), coalesce(sum(d.sign) FILTER (WHERE d.retried), 0), min(d.example)
FROM public.webhook_event_rollup_delta d
WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < date_trunc('hour', p_end, 'UTC')
GROUP BY 1, 2, 3, 4, 5
UNION ALL
SELECT date_trunc('hour', e.created_at, 'UTC'), e.event_type, e.processing_status,
       coalesce(e.error_category, ''), coalesce(e.error_fingerprint, ''),
       count(*), count(*) FILTER (WHERE e.attempts > 1), min(left(e.error_message, 500))
FROM (
    SELECT created_at, event_type, processing_status, error_category, error_fingerprint, attempts, error_message
    FROM public.webhook_events
    WHERE created_at >= p_start AND created_at < least(public.webhook_rollup_full_from(p_start), p_end)
    UNION ALL
    SELECT created_at, event_type, processing_status, error_category, error_fingerprint, attempts, error_message
    FROM public.webhook_events
    WHERE created_at >= greatest(date_trunc('hour', p_end, 'UTC'), public.webhook_rollup_full_from(p_start))
      AND created_at < p_end
) e
GROUP BY 1, 2, 3, 4, 5
$$;

-- The duration histogram of [start, end) the same way: (status, bin, events). The bins are
-- 0110's, so the percentiles read from it are what they were.
CREATE OR REPLACE FUNCTION public.webhook_duration_window(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (processing_status text, bin smallint, events bigint)
LANGUAGE sql
STABLE
AS $$
SELECT processing_status, bin, sum(events)::bigint
FROM (
    SELECT r.processing_status, r.bin, r.events
    FROM public.webhook_event_duration_rollup_daily r
    WHERE r.day >= public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start))
      AND r.day < date_trunc('day', p_end, 'UTC')
    UNION ALL
    SELECT r.processing_status, r.bin, r.events
    FROM public.webhook_event_duration_rollup r
    WHERE r.bucket >= public.webhook_rollup_full_from(p_start)
      AND r.bucket < least(public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start)),
                           date_trunc('hour', p_end, 'UTC'))
    UNION ALL
    SELECT r.processing_status, r.bin, r.events
    FROM public.webhook_event_duration_rollup r
    WHERE r.bucket >= greatest(date_trunc('day', p_end, 'UTC'),
                               public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start)))
      AND r.bucket < date_trunc('hour', p_end, 'UTC')
    UNION ALL
    SELECT d.processing_status, d.duration_bin, d.sign
    FROM public.webhook_event_rollup_delta d
    WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < date_trunc('hour', p_end, 'UTC')
      AND d.duration_bin IS NOT NULL
    UNION ALL
    SELECT e.processing_status, public.webhook_duration_bin(e.processing_duration_ms), 1
    FROM public.webhook_events e
    WHERE e.created_at >= p_start AND e.created_at < least(public.webhook_rollup_full_from(p_start), p_end)
      AND e.processing_duration_ms IS NOT NULL
    UNION ALL
    SELECT e.processing_status, public.webhook_duration_bin(e.processing_duration_ms), 1
    FROM public.webhook_events e
    WHERE e.created_at >= greatest(date_trunc('hour', p_end, 'UTC'), public.webhook_rollup_full_from(p_start))
      AND e.created_at < p_end AND e.processing_duration_ms IS NOT NULL
) parts
GROUP BY 1, 2
HAVING sum(events) <> 0
$$;
