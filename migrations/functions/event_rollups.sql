-- The event rollups: the dashboard's aggregates at a cost flat in the size of the history.
-- The tables (webhook_event_rollup, webhook_event_duration_rollup, their daily levels and
-- webhook_event_rollup_delta) are described in migrations/0179_baseline.sql. Writers only
-- append changes (row trigger webhook_events_rollup); webhook_rollup_fold() folds them into
-- the hourly and daily tables now and then; the window functions read whole UTC days from
-- the daily level, other whole hours from the hourly one, pending changes, and the partial
-- edge hours from the rows. The triggers run as the table owner (SECURITY DEFINER), so
-- whichever role writes events needs no rights on the rollup tables. A function file (see
-- tracking.sql).

-- Duration histogram bins: bin 0 holds durations <= 0 ms; bin k >= 1 holds durations d with
-- 1.05^(k-1) <= d < 1.05^k ms (so 1 ms is bin 1, 1 s bin 143, 1 h bin 311). A percentile read
-- from the histogram is the geometric middle of its bin: within 2.5 % of the exact value.
CREATE OR REPLACE FUNCTION public.webhook_duration_bin(p_ms integer)
RETURNS smallint
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT CASE WHEN p_ms IS NULL THEN NULL
            WHEN p_ms <= 0 THEN 0
            ELSE 1 + floor(ln(p_ms) / ln(1.05))::integer END::smallint
$$;

-- The representative duration of a bin (its geometric middle; 0 for bin 0).
CREATE OR REPLACE FUNCTION public.webhook_duration_bin_value(p_bin integer)
RETURNS double precision
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT CASE WHEN p_bin <= 0 THEN 0::double precision
            ELSE power(1.05::double precision, p_bin - 0.5) END
$$;

-- Fold the pending changes into the hourly and the daily tables, in one statement, one folder
-- at a time (a transaction-scoped advisory lock; a second caller returns at once), so both
-- levels always hold the same folded changes. Returns how many changes it folded.
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

-- The row trigger: -1 for the old row's key and +1 for the new row's appended to
-- webhook_event_rollup_delta, the error rollups told about the event (the same trigger, so
-- whoever pauses one pauses both); TRUNCATE empties both levels.
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

-- Folding, once per statement that changed events, with a probability of 1 in 100: the
-- pending changes stay a few hundred rows on a busy endpoint, and folding them takes the
-- folder a few milliseconds. A statement-level trigger, so a bulk statement folds once.
CREATE OR REPLACE FUNCTION public.webhook_rollup_fold_sometimes()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF random() < 0.01 THEN
        PERFORM public.webhook_rollup_fold();
    END IF;
    RETURN NULL;
END
$$;

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

-- Recompute the event rollups from the rows, set-based, the daily level from the hourly one
-- (webhook_rollup_rebuild() calls it). Takes the table's SHARE lock, so no event changes
-- meanwhile.
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

CREATE OR REPLACE FUNCTION public.webhook_rollup_rebuild()
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    PERFORM public.webhook_rollup_rebuild_events();
    PERFORM public.webhook_error_rollup_rebuild();
END
$$;

-- A moment rounded down to its UTC hour, or to its UTC midnight: date_trunc(unit, t, 'UTC')
-- written with immutable operations (date_trunc with a time zone argument is only STABLE),
-- so that the planner computes a window's bounds once, from the query's parameters, instead
-- of for every row a scan reads (a 30-day window's daily error rollup spent 59 ms on it
-- for its 10,000 rows at 10M events). The same answers.
CREATE OR REPLACE FUNCTION public.webhook_utc_hour(p_moment timestamptz)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE
AS $$
SELECT date_trunc('hour', p_moment AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

CREATE OR REPLACE FUNCTION public.webhook_utc_day(p_moment timestamptz)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE
AS $$
SELECT date_trunc('day', p_moment AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

-- [start, end) as rollup rows (and pending changes) of its whole hours plus raw rows of its
-- partial edge hours, in the rollup's shape: a sum of events over the result is a count over
-- webhook_events. The whole hours are [full_from, full_to): full_from is start rounded up to
-- the hour, full_to is end rounded down. The raw rows are read as two index ranges,
-- [start, least(full_from, end)) and [greatest(full_to, full_from), end), which cover the
-- rest of the window exactly once also when it holds no whole hour.
CREATE OR REPLACE FUNCTION public.webhook_rollup_full_from(p_start timestamptz)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE
AS $$
SELECT CASE WHEN public.webhook_utc_hour(p_start) = p_start THEN p_start
            ELSE (date_trunc('hour', p_start AT TIME ZONE 'UTC') + interval '1 hour') AT TIME ZONE 'UTC' END
$$;

-- The first UTC midnight at or after a moment, for the functions that split a window into
-- whole days (the daily rollups) and hours. Computed on UTC's wall clock (a timestamp
-- without time zone), where a day is always 24 hours: adding a day to a timestamptz is
-- calendar arithmetic in the session's TimeZone, 23 or 25 hours across a daylight-saving
-- change (a test with PGTZ=America/New_York and a window across 8 March found 57 events for 52).
CREATE OR REPLACE FUNCTION public.webhook_rollup_day_from(p_moment timestamptz)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE
AS $$
SELECT CASE WHEN public.webhook_utc_day(p_moment) = p_moment THEN p_moment
            ELSE (date_trunc('day', p_moment AT TIME ZONE 'UTC') + interval '24 hours') AT TIME ZONE 'UTC' END
$$;

-- Whole hours of [start, end): [hs, he), hs = full_from(start), he = end rounded down to the
-- hour. Whole UTC days inside them: [ds, de), ds = hs rounded up to midnight UTC (24 h,
-- webhook_rollup_day_from), de = he rounded down to midnight UTC; when ds >= de there is none, and the two
-- hourly ranges [hs, least(ds, he)) and [greatest(de, ds), he) cover the whole hours
-- exactly once either way (as webhook_error_event_window reads its levels).

-- [start, end) hour by hour (for charts with hourly buckets): webhook_window_counts without
-- the daily level.
-- Both readers skip rows whose counts are zero unless they carry an example: a day's example
-- is the least message of its hours, also of an hour whose failures all recovered since
-- (queries/errors.sql), so the hours are read the same way or the two levels would name
-- different examples for one fingerprint.
CREATE OR REPLACE FUNCTION public.webhook_window_counts_hourly(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (bucket timestamptz, event_type text, processing_status text, error_category text,
               error_fingerprint text, events bigint, retried bigint, example text)
LANGUAGE sql
STABLE
AS $$
SELECT r.bucket, r.event_type, r.processing_status, r.error_category, r.error_fingerprint,
       r.events, r.retried, r.example
FROM public.webhook_event_rollup r
WHERE r.bucket >= public.webhook_rollup_full_from(p_start) AND r.bucket < public.webhook_utc_hour(p_end)
  AND (r.events <> 0 OR r.retried <> 0 OR r.example IS NOT NULL)
UNION ALL
SELECT d.bucket, d.event_type, d.processing_status, d.error_category, d.error_fingerprint,
       sum(d.sign), coalesce(sum(d.sign) FILTER (WHERE d.retried), 0), min(d.example)
FROM public.webhook_event_rollup_delta d
WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < public.webhook_utc_hour(p_end)
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
    WHERE created_at >= greatest(public.webhook_utc_hour(p_end), public.webhook_rollup_full_from(p_start))
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
  AND r.day < public.webhook_utc_day(p_end)
  AND (r.events <> 0 OR r.retried <> 0 OR r.example IS NOT NULL)
UNION ALL
SELECT r.bucket, r.event_type, r.processing_status, r.error_category, r.error_fingerprint,
       r.events, r.retried, r.example
FROM public.webhook_event_rollup r
WHERE r.bucket >= public.webhook_rollup_full_from(p_start)
  AND r.bucket < least(public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start)),
                       public.webhook_utc_hour(p_end))
  AND (r.events <> 0 OR r.retried <> 0 OR r.example IS NOT NULL)
UNION ALL
SELECT r.bucket, r.event_type, r.processing_status, r.error_category, r.error_fingerprint,
       r.events, r.retried, r.example
FROM public.webhook_event_rollup r
WHERE r.bucket >= greatest(public.webhook_utc_day(p_end),
                           public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start)))
  AND r.bucket < public.webhook_utc_hour(p_end)
  AND (r.events <> 0 OR r.retried <> 0 OR r.example IS NOT NULL)
UNION ALL
SELECT d.bucket, d.event_type, d.processing_status, d.error_category, d.error_fingerprint,
       sum(d.sign), coalesce(sum(d.sign) FILTER (WHERE d.retried), 0), min(d.example)
FROM public.webhook_event_rollup_delta d
WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < public.webhook_utc_hour(p_end)
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
    WHERE created_at >= greatest(public.webhook_utc_hour(p_end), public.webhook_rollup_full_from(p_start))
      AND created_at < p_end
) e
GROUP BY 1, 2, 3, 4, 5
$$;

-- The duration histogram of [start, end) the same way: (status, bin, events). The bins are
-- webhook_duration_bin's.
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
      AND r.day < public.webhook_utc_day(p_end)
    UNION ALL
    SELECT r.processing_status, r.bin, r.events
    FROM public.webhook_event_duration_rollup r
    WHERE r.bucket >= public.webhook_rollup_full_from(p_start)
      AND r.bucket < least(public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start)),
                           public.webhook_utc_hour(p_end))
    UNION ALL
    SELECT r.processing_status, r.bin, r.events
    FROM public.webhook_event_duration_rollup r
    WHERE r.bucket >= greatest(public.webhook_utc_day(p_end),
                               public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start)))
      AND r.bucket < public.webhook_utc_hour(p_end)
    UNION ALL
    SELECT d.processing_status, d.duration_bin, d.sign
    FROM public.webhook_event_rollup_delta d
    WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < public.webhook_utc_hour(p_end)
      AND d.duration_bin IS NOT NULL
    UNION ALL
    SELECT e.processing_status, public.webhook_duration_bin(e.processing_duration_ms), 1
    FROM public.webhook_events e
    WHERE e.created_at >= p_start AND e.created_at < least(public.webhook_rollup_full_from(p_start), p_end)
      AND e.processing_duration_ms IS NOT NULL
    UNION ALL
    SELECT e.processing_status, public.webhook_duration_bin(e.processing_duration_ms), 1
    FROM public.webhook_events e
    WHERE e.created_at >= greatest(public.webhook_utc_hour(p_end), public.webhook_rollup_full_from(p_start))
      AND e.created_at < p_end AND e.processing_duration_ms IS NOT NULL
) parts
GROUP BY 1, 2
HAVING sum(events) <> 0
$$;

CREATE OR REPLACE TRIGGER webhook_events_rollup AFTER INSERT OR UPDATE OR DELETE ON webhook_events
    FOR EACH ROW EXECUTE FUNCTION public.webhook_rollup_maintain();

CREATE OR REPLACE TRIGGER webhook_events_rollup_truncate AFTER TRUNCATE ON webhook_events
    FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_rollup_maintain();

CREATE OR REPLACE TRIGGER webhook_events_rollup_fold AFTER INSERT OR UPDATE OR DELETE ON webhook_events
    FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_rollup_fold_sometimes();

-- Callable by their owner only (_privileges.sql says why).
SELECT public.webhook_monitor_callable_by(ARRAY[
        'public.webhook_duration_bin(integer)',
        'public.webhook_duration_bin_value(integer)',
        'public.webhook_rollup_fold()',
        'public.webhook_rollup_maintain()',
        'public.webhook_rollup_fold_sometimes()',
        'public.webhook_rollup_fill_daily()',
        'public.webhook_rollup_rebuild_events()',
        'public.webhook_rollup_rebuild()',
        'public.webhook_utc_hour(timestamptz)',
        'public.webhook_utc_day(timestamptz)',
        'public.webhook_rollup_full_from(timestamptz)',
        'public.webhook_rollup_day_from(timestamptz)',
        'public.webhook_window_counts_hourly(timestamptz, timestamptz)',
        'public.webhook_window_counts(timestamptz, timestamptz)',
        'public.webhook_duration_window(timestamptz, timestamptz)'
]::regprocedure[]);
