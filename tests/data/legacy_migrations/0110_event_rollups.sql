-- Rollups: the dashboard's aggregates at a cost flat in the size of the history.
--
-- * webhook_events.error_fingerprint: public.error_fingerprint (migrations/0061) of the
--   error message (null when there is none), computed once when the message is written (a
--   stored generated column) instead of by regex at read time.
-- * webhook_event_rollup: per UTC hour of created_at × event type × status × error category
--   × fingerprint, how many events there are, how many were attempted more than once, and
--   an example message. webhook_event_duration_rollup: per hour × status, a histogram of
--   processing_duration_ms over fixed bins (webhook_duration_bin, below).
-- * Both are kept exact by a row trigger on webhook_events: every INSERT, UPDATE and DELETE
--   appends -1 for the old row's key and +1 for the new row's to webhook_event_rollup_delta
--   (retries, reclaims, late updates land in the bucket of the event's created_at), which is
--   folded into the rollups now and then; TRUNCATE empties all three. Cleanup's archive
--   move deletes from webhook_events, so archived events leave the rollups as they leave
--   the raw counts: the dashboard's windows never counted archived events, nor do they now.
-- * webhook_window_counts(start, end) and webhook_duration_window(start, end): the rollup
--   rows (and pending deltas) of the whole hours inside [start, end) plus the raw rows of the partial hours at
--   its edges, grouped alike, so a sum over them equals a count over webhook_events.
-- The triggers run as the table owner (SECURITY DEFINER), so whichever role writes events
-- (the handler's, through the tracking functions) needs no rights on the rollup tables.

ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS error_fingerprint text
    GENERATED ALWAYS AS (CASE WHEN error_message <> '' THEN public.error_fingerprint(error_message) END) STORED;
-- The archive keeps every column of the events it holds (computed the same way).
ALTER TABLE webhook_events_archive ADD COLUMN IF NOT EXISTS error_fingerprint text
    GENERATED ALWAYS AS (CASE WHEN error_message <> '' THEN public.error_fingerprint(error_message) END) STORED;

-- The errors page's first/last seen per fingerprint: two index probes each.
CREATE INDEX IF NOT EXISTS webhook_events_fingerprint_idx
    ON webhook_events (error_fingerprint, created_at) WHERE error_fingerprint IS NOT NULL;
-- Stuck events (still processing): few rows, read whatever the window.
CREATE INDEX IF NOT EXISTS webhook_events_processing_idx
    ON webhook_events (created_at) INCLUDE (processing_started_at) WHERE processing_status = 'processing';

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

CREATE TABLE IF NOT EXISTS webhook_event_rollup (
    bucket            timestamptz NOT NULL,           -- date_trunc('hour', created_at, 'UTC')
    event_type        text NOT NULL,
    processing_status text NOT NULL,
    error_category    text NOT NULL DEFAULT '',       -- '' when none
    error_fingerprint text NOT NULL DEFAULT '',       -- '' when no error message
    events            bigint NOT NULL DEFAULT 0,
    retried           bigint NOT NULL DEFAULT 0,      -- attempts > 1
    -- The least message (first 500 characters) seen for this fingerprint in this hour. Kept
    -- when that event later changes or leaves: an example, not a count.
    example           text,
    PRIMARY KEY (bucket, event_type, processing_status, error_category, error_fingerprint)
);

CREATE TABLE IF NOT EXISTS webhook_event_duration_rollup (
    bucket            timestamptz NOT NULL,
    processing_status text NOT NULL,
    bin               smallint NOT NULL,
    events            bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, processing_status, bin)
);

ALTER TABLE webhook_event_rollup ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_event_duration_rollup ENABLE ROW LEVEL SECURITY;

-- Changes not yet folded into the two rollups: one row per event row that entered (+1) or
-- left (-1) a rollup key. Writers only append here, never update a shared rollup row, so
-- concurrent handlers never wait for each other's transactions (a counter row updated by
-- every delivery would serialise them all). webhook_rollup_fold() moves them into the
-- rollups; readers add what is still here.
CREATE TABLE IF NOT EXISTS webhook_event_rollup_delta (
    sign              smallint NOT NULL,
    bucket            timestamptz NOT NULL,
    event_type        text NOT NULL,
    processing_status text NOT NULL,
    error_category    text NOT NULL,
    error_fingerprint text NOT NULL,
    retried           boolean NOT NULL,
    duration_bin      smallint,
    example           text
);
CREATE INDEX IF NOT EXISTS webhook_event_rollup_delta_bucket_idx ON webhook_event_rollup_delta (bucket);
ALTER TABLE webhook_event_rollup_delta ENABLE ROW LEVEL SECURITY;

-- Fold the pending changes into the rollups, in one statement, one folder at a time (a
-- transaction-scoped advisory lock; a second caller returns at once). Returns how many
-- changes it folded.
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
    )
    SELECT (SELECT count(*) FROM taken) + 0 * (SELECT count(*) FROM counted) + 0 * (SELECT count(*) FROM timed)
      INTO v_folded;
    RETURN v_folded;
END
$$;
REVOKE EXECUTE ON FUNCTION public.webhook_rollup_fold() FROM PUBLIC;

CREATE OR REPLACE FUNCTION public.webhook_rollup_maintain()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
-- Per row: -1 for the old row's rollup key, +1 for the new row's; nothing when an update
-- leaves every rolled-up column as it was (a retry lease, a payload fix). About one
-- statement in a hundred (and never two at once) also folds the pending changes.
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM public.webhook_event_rollup;
        DELETE FROM public.webhook_event_duration_rollup;
        DELETE FROM public.webhook_event_rollup_delta;
        RETURN NULL;
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
REVOKE EXECUTE ON FUNCTION public.webhook_rollup_fold_sometimes() FROM PUBLIC;

DROP TRIGGER IF EXISTS webhook_events_rollup_insert ON webhook_events;
DROP TRIGGER IF EXISTS webhook_events_rollup_update ON webhook_events;
DROP TRIGGER IF EXISTS webhook_events_rollup_delete ON webhook_events;
DROP TRIGGER IF EXISTS webhook_events_rollup ON webhook_events;
DROP TRIGGER IF EXISTS webhook_events_rollup_fold ON webhook_events;
DROP TRIGGER IF EXISTS webhook_events_rollup_truncate ON webhook_events;
CREATE TRIGGER webhook_events_rollup AFTER INSERT OR UPDATE OR DELETE ON webhook_events
    FOR EACH ROW EXECUTE FUNCTION public.webhook_rollup_maintain();
CREATE TRIGGER webhook_events_rollup_fold AFTER INSERT OR UPDATE OR DELETE ON webhook_events
    FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_rollup_fold_sometimes();
CREATE TRIGGER webhook_events_rollup_truncate AFTER TRUNCATE ON webhook_events
    FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_rollup_maintain();

-- Recompute both rollups from the rows, set-based: after this migration adds them, and after
-- a bulk load that ran with the rollup triggers disabled (demo-data does, for speed: the
-- triggers would keep a transition table of every loaded row). Takes the table's SHARE lock,
-- so no event changes while the rollups are rebuilt.
CREATE OR REPLACE FUNCTION public.webhook_rollup_rebuild()
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
END
$$;
REVOKE EXECUTE ON FUNCTION public.webhook_rollup_rebuild() FROM PUBLIC;

SELECT public.webhook_rollup_rebuild();

-- [start, end) as rollup rows (and pending changes) of its whole hours plus raw rows of its
-- partial edge hours, in the rollup's shape: a sum of events over the result is a count over
-- webhook_events. The whole hours are [full_from, full_to): full_from is start rounded up to
-- the hour, full_to is end rounded down. The raw rows are read as two index ranges,
-- [start, least(full_from, end)) and [greatest(full_to, full_from), end), which cover the
-- rest of the window exactly once also when it holds no whole hour.
CREATE OR REPLACE FUNCTION public.webhook_rollup_full_from(p_start timestamptz)
RETURNS timestamptz
LANGUAGE sql
STABLE
AS $$
SELECT CASE WHEN date_trunc('hour', p_start, 'UTC') = p_start THEN p_start
            ELSE date_trunc('hour', p_start, 'UTC') + interval '1 hour' END
$$;

CREATE OR REPLACE FUNCTION public.webhook_window_counts(p_start timestamptz, p_end timestamptz)
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

-- The duration histogram of [start, end), the same way: (status, bin, events).
CREATE OR REPLACE FUNCTION public.webhook_duration_window(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (processing_status text, bin smallint, events bigint)
LANGUAGE sql
STABLE
AS $$
SELECT processing_status, bin, sum(events)::bigint
FROM (
    SELECT r.processing_status, r.bin, r.events
    FROM public.webhook_event_duration_rollup r
    WHERE r.bucket >= public.webhook_rollup_full_from(p_start) AND r.bucket < date_trunc('hour', p_end, 'UTC')
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
