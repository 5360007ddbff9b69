-- The error rollups: the Errors page's failed attempts and error groups at a cost flat in
-- the size of the history, kept the way event_rollups.sql keeps the event rollups (tables
-- described in migrations/0179_baseline.sql). The triggers follow the event rollup trigger
-- (webhook_events_rollup): while it is disabled (demo-data's bulk load) these do nothing,
-- and webhook_rollup_rebuild() recomputes everything after. A function file (see
-- tracking.sql).

-- Whether the event rollup trigger is on (these rollups follow it).
CREATE OR REPLACE FUNCTION public.webhook_error_rollups_on()
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = ''
AS $$
SELECT coalesce((SELECT t.tgenabled <> 'D' FROM pg_catalog.pg_trigger t
                 WHERE t.tgrelid = to_regclass('public.webhook_events') AND t.tgname = 'webhook_events_rollup'), true)
$$;

-- Rewrite one event's webhook_error_events rows from its failures and its state, appending
-- -1 for each old row and +1 for each new one to the rollups' changes (and the same for a
-- failure that is the event row itself, which the attempts trigger does not see). One
-- event at a time (a transaction-scoped advisory lock on the event id).
CREATE OR REPLACE FUNCTION public.webhook_error_events_refresh(p_stripe_event_id text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF p_stripe_event_id IS NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('webhook_error_events'), hashtext(p_stripe_event_id));
    INSERT INTO public.webhook_error_event_rollup_delta
        (sign, bucket, error_fingerprint, event_type, error_category, recovered, failing, needs_person, recovery_action)
    SELECT -1, date_trunc('hour', p.last_failed, 'UTC'), p.error_fingerprint, p.event_type, p.error_category,
           p.recovered, p.failing, p.needs_person, p.recovery_action
    FROM public.webhook_error_events p
    WHERE p.stripe_event_id = p_stripe_event_id;
    INSERT INTO public.webhook_failure_rollup_delta (sign, bucket, error_fingerprint, error_category)
    SELECT -1, date_trunc('hour', p.first_failed, 'UTC'), p.error_fingerprint, p.error_category
    FROM public.webhook_error_events p
    WHERE p.stripe_event_id = p_stripe_event_id AND p.legacy;
    DELETE FROM public.webhook_error_events p WHERE p.stripe_event_id = p_stripe_event_id;

    INSERT INTO public.webhook_error_events
        (error_fingerprint, stripe_event_id, event_type, error_category, first_failed, last_failed, failures,
         legacy, recovered, failing, needs_person, recovery_action, next_retry_at, created_at)
    WITH ev AS (
        SELECT e.event_type, e.processing_status, e.recovery_action, e.next_retry_at, e.created_at,
               e.processed_at, e.error_fingerprint, e.error_category
        FROM public.webhook_events e
        WHERE e.stripe_event_id = p_stripe_event_id
    ), failures AS (
        SELECT a.error_fingerprint AS fingerprint, a.error_category AS category, a.finished_at AS failed_at,
               false AS legacy
        FROM public.webhook_event_attempts a
        WHERE a.stripe_event_id = p_stripe_event_id AND a.outcome = 'failed' AND a.finished_at IS NOT NULL
        UNION ALL
        SELECT coalesce(nullif(ev.error_fingerprint, ''), 'unspecified error'), ev.error_category,
               coalesce(ev.processed_at, ev.created_at), true
        FROM ev
        WHERE ev.processing_status = 'failed'
          AND NOT EXISTS (SELECT 1 FROM public.webhook_event_attempts a WHERE a.stripe_event_id = p_stripe_event_id)
    ), state AS (
        SELECT (SELECT event_type FROM ev) AS event_type,
               (SELECT processing_status FROM ev) AS status,
               (SELECT recovery_action FROM ev) AS recovery_action,
               (SELECT next_retry_at FROM ev) AS next_retry_at,
               (SELECT created_at FROM ev) AS created_at,
               (SELECT x.event_type FROM public.webhook_events_archive x
                WHERE x.stripe_event_id = p_stripe_event_id) AS archived_type
    )
    SELECT f.fingerprint, p_stripe_event_id, coalesce(s.event_type, s.archived_type, ''),
           coalesce(max(f.category), ''), min(f.failed_at), max(f.failed_at), count(*), bool_or(f.legacy),
           coalesce(s.status = 'completed', false) OR s.archived_type IS NOT NULL,
           coalesce(s.status = 'failed', false),
           coalesce(s.status = 'failed' AND s.next_retry_at IS NULL, false),
           CASE WHEN s.status = 'failed' THEN coalesce(s.recovery_action, '') ELSE '' END,
           CASE WHEN s.status = 'failed' THEN s.next_retry_at END,
           s.created_at
    FROM failures f CROSS JOIN state s
    GROUP BY f.fingerprint, s.event_type, s.archived_type, s.status, s.recovery_action, s.next_retry_at, s.created_at;

    INSERT INTO public.webhook_error_event_rollup_delta
        (sign, bucket, error_fingerprint, event_type, error_category, recovered, failing, needs_person, recovery_action)
    SELECT 1, date_trunc('hour', p.last_failed, 'UTC'), p.error_fingerprint, p.event_type, p.error_category,
           p.recovered, p.failing, p.needs_person, p.recovery_action
    FROM public.webhook_error_events p
    WHERE p.stripe_event_id = p_stripe_event_id;
    INSERT INTO public.webhook_failure_rollup_delta (sign, bucket, error_fingerprint, error_category, example)
    SELECT 1, date_trunc('hour', p.first_failed, 'UTC'), p.error_fingerprint, p.error_category,
           left(e.error_message, 500)
    FROM public.webhook_error_events p
    JOIN public.webhook_events e ON e.stripe_event_id = p.stripe_event_id
    WHERE p.stripe_event_id = p_stripe_event_id AND p.legacy;
END
$$;

-- Fold the pending changes of both rollups, one folder at a time (as webhook_rollup_fold).
CREATE OR REPLACE FUNCTION public.webhook_error_rollup_fold()
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('webhook_error_rollup_fold')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM public.webhook_failure_rollup_delta RETURNING *
    ), counted AS (
        INSERT INTO public.webhook_failure_rollup AS r (bucket, error_fingerprint, error_category, failures, example)
        SELECT bucket, error_fingerprint, error_category, sum(sign), min(example)
        FROM taken
        GROUP BY 1, 2, 3
        HAVING sum(sign) <> 0 OR min(example) IS NOT NULL
        ORDER BY 1, 2, 3
        ON CONFLICT (bucket, error_fingerprint, error_category) DO UPDATE
           SET failures = r.failures + excluded.failures,
               example  = coalesce(least(r.example, excluded.example), r.example, excluded.example)
        RETURNING 1
    ), taken_events AS (
        DELETE FROM public.webhook_error_event_rollup_delta RETURNING *
    ), counted_events AS (
        INSERT INTO public.webhook_error_event_rollup AS r
            (bucket, error_fingerprint, event_type, error_category, recovered, failing, needs_person,
             recovery_action, events)
        SELECT bucket, error_fingerprint, event_type, error_category, recovered, failing, needs_person,
               recovery_action, sum(sign)
        FROM taken_events
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        HAVING sum(sign) <> 0
        ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
        ON CONFLICT (bucket, error_fingerprint, event_type, error_category, recovered, failing, needs_person,
                     recovery_action) DO UPDATE
           SET events = r.events + excluded.events
        RETURNING 1
    ), counted_days AS (
        INSERT INTO public.webhook_error_event_rollup_daily AS r
            (day, error_fingerprint, event_type, error_category, recovered, failing, needs_person,
             recovery_action, events)
        SELECT date_trunc('day', bucket, 'UTC'), error_fingerprint, event_type, error_category, recovered, failing,
               needs_person, recovery_action, sum(sign)
        FROM taken_events
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        HAVING sum(sign) <> 0
        ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
        ON CONFLICT (day, error_fingerprint, event_type, error_category, recovered, failing, needs_person,
                     recovery_action) DO UPDATE
           SET events = r.events + excluded.events
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM taken) + (SELECT count(*) FROM taken_events)
           + 0 * (SELECT count(*) FROM counted) + 0 * (SELECT count(*) FROM counted_events)
           + 0 * (SELECT count(*) FROM counted_days)
      INTO v_folded;
    RETURN v_folded;
END
$$;

CREATE OR REPLACE FUNCTION public.webhook_error_rollup_fold_sometimes()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF random() < 0.01 THEN
        PERFORM public.webhook_error_rollup_fold();
    END IF;
    RETURN NULL;
END
$$;

-- Recompute the error rollups and webhook_error_events from the rows, set-based (after a
-- bulk load that ran with the triggers paused). Merge joins off: PostgreSQL before 16.4 (the
-- embedded server is 16.2) can drop rows from a Merge Right Anti Join of "failed events
-- without any attempt", exactly this shape. Takes SHARE locks on the tables it
-- reads, so nothing changes meanwhile.
CREATE OR REPLACE FUNCTION public.webhook_error_rollup_rebuild()
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
SET enable_mergejoin = off
AS $$
BEGIN
    LOCK TABLE public.webhook_events, public.webhook_event_attempts, public.webhook_events_archive IN SHARE MODE;
    DELETE FROM public.webhook_failure_rollup_delta;
    DELETE FROM public.webhook_failure_rollup;
    DELETE FROM public.webhook_error_event_rollup_delta;
    DELETE FROM public.webhook_error_event_rollup;
    DELETE FROM public.webhook_error_event_rollup_daily;
    DELETE FROM public.webhook_error_events;
    CREATE TEMPORARY TABLE webhook_error_failures ON COMMIT DROP AS
    SELECT a.stripe_event_id, a.error_fingerprint AS fingerprint, a.error_category AS category,
           a.finished_at AS failed_at, false AS legacy, a.error_message
    FROM public.webhook_event_attempts a
    WHERE a.outcome = 'failed' AND a.finished_at IS NOT NULL
    UNION ALL
    SELECT e.stripe_event_id, coalesce(nullif(e.error_fingerprint, ''), 'unspecified error'), e.error_category,
           coalesce(e.processed_at, e.created_at), true, e.error_message
    FROM public.webhook_events e
    WHERE e.processing_status = 'failed'
      AND NOT EXISTS (SELECT 1 FROM public.webhook_event_attempts a WHERE a.stripe_event_id = e.stripe_event_id);

    INSERT INTO public.webhook_failure_rollup (bucket, error_fingerprint, error_category, failures, example)
    SELECT date_trunc('hour', failed_at, 'UTC'), fingerprint, coalesce(category, ''), count(*),
           min(left(error_message, 500))
    FROM pg_temp.webhook_error_failures
    GROUP BY 1, 2, 3;

    INSERT INTO public.webhook_error_events
        (error_fingerprint, stripe_event_id, event_type, error_category, first_failed, last_failed, failures,
         legacy, recovered, failing, needs_person, recovery_action, next_retry_at, created_at)
    SELECT f.fingerprint, f.stripe_event_id, coalesce(e.event_type, x.event_type, ''),
           coalesce(f.category, ''), f.first_failed, f.last_failed, f.failures, f.legacy,
           coalesce(e.processing_status = 'completed', false) OR x.event_type IS NOT NULL,
           coalesce(e.processing_status = 'failed', false),
           coalesce(e.processing_status = 'failed' AND e.next_retry_at IS NULL, false),
           CASE WHEN e.processing_status = 'failed' THEN coalesce(e.recovery_action, '') ELSE '' END,
           CASE WHEN e.processing_status = 'failed' THEN e.next_retry_at END,
           e.created_at
    FROM (
        SELECT stripe_event_id, fingerprint, max(category) AS category, min(failed_at) AS first_failed,
               max(failed_at) AS last_failed, count(*) AS failures, bool_or(legacy) AS legacy
        FROM pg_temp.webhook_error_failures
        GROUP BY 1, 2
    ) f
    LEFT JOIN public.webhook_events e ON e.stripe_event_id = f.stripe_event_id
    LEFT JOIN public.webhook_events_archive x ON x.stripe_event_id = f.stripe_event_id;

    INSERT INTO public.webhook_error_event_rollup
        (bucket, error_fingerprint, event_type, error_category, recovered, failing, needs_person, recovery_action,
         events)
    SELECT date_trunc('hour', last_failed, 'UTC'), error_fingerprint, event_type, error_category, recovered,
           failing, needs_person, recovery_action, count(*)
    FROM public.webhook_error_events
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
    INSERT INTO public.webhook_error_event_rollup_daily
        (day, error_fingerprint, event_type, error_category, recovered, failing, needs_person, recovery_action,
         events)
    SELECT date_trunc('day', bucket, 'UTC'), error_fingerprint, event_type, error_category, recovered,
           failing, needs_person, recovery_action, sum(events)
    FROM public.webhook_error_event_rollup
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
    DROP TABLE pg_temp.webhook_error_failures;
END
$$;

-- The attempts side: -1/+1 for a failed attempt that enters, leaves or moves; the event's
-- rows rewritten when a failure enters or leaves, or when the event gains its first
-- attempts row or loses its last (its own failure stops or starts counting). An attempt
-- that opens or completes (the path every delivery takes) costs two index probes.
CREATE OR REPLACE FUNCTION public.webhook_error_attempts_maintain()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_old_failed boolean := false;
    v_new_failed boolean := false;
    v_event_id   text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM public.webhook_error_rollup_rebuild();
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_old_failed := OLD.outcome = 'failed' AND OLD.finished_at IS NOT NULL;
        v_event_id := OLD.stripe_event_id;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        v_new_failed := NEW.outcome = 'failed' AND NEW.finished_at IS NOT NULL;
        v_event_id := NEW.stripe_event_id;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.stripe_event_id = NEW.stripe_event_id AND v_old_failed = v_new_failed
       AND (NOT v_old_failed
            OR (OLD.finished_at = NEW.finished_at
                AND OLD.error_fingerprint IS NOT DISTINCT FROM NEW.error_fingerprint
                AND OLD.error_category IS NOT DISTINCT FROM NEW.error_category
                AND OLD.error_message IS NOT DISTINCT FROM NEW.error_message)) THEN
        RETURN NULL;
    END IF;
    IF NOT v_old_failed AND NOT v_new_failed THEN
        -- An attempt row that never failed: it matters only to an event whose own failure
        -- counts (or would count) because it has no attempts row.
        -- (An update of a row that never failed returned above, so one event id is concerned.)
        IF NOT EXISTS (SELECT 1 FROM public.webhook_error_events p WHERE p.stripe_event_id = v_event_id)
           AND NOT EXISTS (SELECT 1 FROM public.webhook_events e
                           WHERE e.stripe_event_id = v_event_id AND e.processing_status = 'failed') THEN
            RETURN NULL;
        END IF;
    END IF;
    IF NOT public.webhook_error_rollups_on() THEN
        RETURN NULL;
    END IF;
    IF v_old_failed THEN
        INSERT INTO public.webhook_failure_rollup_delta (sign, bucket, error_fingerprint, error_category)
        VALUES (-1, date_trunc('hour', OLD.finished_at, 'UTC'), OLD.error_fingerprint, coalesce(OLD.error_category, ''));
    END IF;
    IF v_new_failed THEN
        INSERT INTO public.webhook_failure_rollup_delta (sign, bucket, error_fingerprint, error_category, example)
        VALUES (1, date_trunc('hour', NEW.finished_at, 'UTC'), NEW.error_fingerprint, coalesce(NEW.error_category, ''),
                left(NEW.error_message, 500));
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM public.webhook_error_events_refresh(OLD.stripe_event_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.stripe_event_id <> OLD.stripe_event_id) THEN
        PERFORM public.webhook_error_events_refresh(NEW.stripe_event_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.webhook_error_archive_maintain()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF EXISTS (SELECT 1 FROM public.webhook_error_events p WHERE p.stripe_event_id = OLD.stripe_event_id) THEN
            PERFORM public.webhook_error_events_refresh(OLD.stripe_event_id);
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        IF EXISTS (SELECT 1 FROM public.webhook_error_events p WHERE p.stripe_event_id = NEW.stripe_event_id) THEN
            PERFORM public.webhook_error_events_refresh(NEW.stripe_event_id);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- Failures in [start, end) in webhook_failure_rollup's shape: whole hours from the rollup
-- (and pending changes), the partial edge hours from the rows (two index ranges each, as
-- webhook_window_counts), so a sum of failures is a count over the raw failures. Merge
-- joins off, as webhook_error_rollup_rebuild.
CREATE OR REPLACE FUNCTION public.webhook_failure_window(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (bucket timestamptz, error_fingerprint text, error_category text, failures bigint, example text)
LANGUAGE sql
STABLE
SET enable_mergejoin = off
AS $$
SELECT r.bucket, r.error_fingerprint, r.error_category, r.failures, r.example
FROM public.webhook_failure_rollup r
WHERE r.bucket >= public.webhook_rollup_full_from(p_start) AND r.bucket < public.webhook_utc_hour(p_end)
  AND r.failures <> 0
UNION ALL
SELECT d.bucket, d.error_fingerprint, d.error_category, sum(d.sign), min(d.example)
FROM public.webhook_failure_rollup_delta d
WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < public.webhook_utc_hour(p_end)
GROUP BY 1, 2, 3
UNION ALL
SELECT date_trunc('hour', f.failed_at, 'UTC'), f.fingerprint, coalesce(f.category, ''), count(*),
       min(left(f.error_message, 500))
FROM (
    SELECT a.finished_at AS failed_at, a.error_fingerprint AS fingerprint, a.error_category AS category, a.error_message
    FROM public.webhook_event_attempts a
    WHERE a.outcome = 'failed'
      AND ((a.finished_at >= p_start AND a.finished_at < least(public.webhook_rollup_full_from(p_start), p_end))
           OR (a.finished_at >= greatest(public.webhook_utc_hour(p_end), public.webhook_rollup_full_from(p_start))
               AND a.finished_at < p_end))
    UNION ALL
    SELECT coalesce(e.processed_at, e.created_at), coalesce(nullif(e.error_fingerprint, ''), 'unspecified error'),
           e.error_category, e.error_message
    FROM public.webhook_events e
    WHERE e.processing_status = 'failed'
      AND ((coalesce(e.processed_at, e.created_at) >= p_start
            AND coalesce(e.processed_at, e.created_at) < least(public.webhook_rollup_full_from(p_start), p_end))
           OR (coalesce(e.processed_at, e.created_at) >= greatest(public.webhook_utc_hour(p_end),
                                                                  public.webhook_rollup_full_from(p_start))
               AND coalesce(e.processed_at, e.created_at) < p_end))
      AND NOT EXISTS (SELECT 1 FROM public.webhook_event_attempts a WHERE a.stripe_event_id = e.stripe_event_id)
) f
GROUP BY 1, 2, 3
$$;

-- Whether one event × fingerprint has a failure in [start, end) (for rows whose last failure
-- is at or after end): an index probe of that event's attempts.
CREATE OR REPLACE FUNCTION public.webhook_error_failed_within(p_stripe_event_id text, p_fingerprint text,
                                                              p_start timestamptz, p_end timestamptz)
RETURNS boolean
LANGUAGE sql
STABLE
AS $$
SELECT EXISTS (SELECT 1 FROM public.webhook_event_attempts a
               WHERE a.stripe_event_id = p_stripe_event_id AND a.outcome = 'failed'
                 AND a.error_fingerprint = p_fingerprint AND a.finished_at >= p_start AND a.finished_at < p_end)
$$;

-- The rows of one error group whose event is failed now and has a failure in [start, end):
-- what Retry now re-delivers (queries/errors.sql reads them oldest first). Inlined by the
-- planner, so a caller's ORDER BY created_at LIMIT n walks webhook_error_events_failing_idx
-- and stops at n.
CREATE OR REPLACE FUNCTION public.webhook_error_group_failing(p_fingerprint text, p_start timestamptz,
                                                             p_end timestamptz)
RETURNS SETOF public.webhook_error_events
LANGUAGE sql
STABLE
AS $$
SELECT p.*
FROM public.webhook_error_events p
WHERE p.error_fingerprint = p_fingerprint AND p.failing
  AND p.last_failed >= p_start AND p.first_failed < p_end
  AND (p.last_failed < p_end
       OR public.webhook_error_failed_within(p.stripe_event_id, p.error_fingerprint, p_start, p_end))
$$;

-- The events × fingerprints with a failure in [start, end), counted in
-- webhook_error_event_rollup's shape: by the hour or day of their last failure, the whole
-- days inside the window's whole hours from the daily rollup, the other whole hours from the
-- hourly one (two ranges, as webhook_window_counts reads its edges), pending changes, the
-- partial edge hours from webhook_error_events, and the rows whose last failure is at or
-- after end that also failed inside the window.
-- Whole hours: [hs, he) with hs = full_from(start), he = end rounded down to the hour; whole
-- days: [ds, de) with ds = hs rounded up to midnight, de = he rounded down to midnight.
CREATE OR REPLACE FUNCTION public.webhook_error_event_window(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (error_fingerprint text, event_type text, error_category text, recovered boolean, failing boolean,
               needs_person boolean, recovery_action text, events bigint)
LANGUAGE sql
STABLE
AS $$
SELECT r.error_fingerprint, r.event_type, r.error_category, r.recovered, r.failing, r.needs_person,
       r.recovery_action, r.events
FROM public.webhook_error_event_rollup_daily r
WHERE r.day >= public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start))
  AND r.day < public.webhook_utc_day(public.webhook_utc_hour(p_end))
  AND r.events <> 0
UNION ALL
SELECT r.error_fingerprint, r.event_type, r.error_category, r.recovered, r.failing, r.needs_person,
       r.recovery_action, r.events
FROM public.webhook_error_event_rollup r
WHERE ((r.bucket >= public.webhook_rollup_full_from(p_start)
        AND r.bucket < least(public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start)),
                             public.webhook_utc_hour(p_end)))
       OR (r.bucket >= greatest(public.webhook_utc_day(public.webhook_utc_hour(p_end)),
                                public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start)))
           AND r.bucket < public.webhook_utc_hour(p_end)))
  AND r.events <> 0
UNION ALL
SELECT d.error_fingerprint, d.event_type, d.error_category, d.recovered, d.failing, d.needs_person,
       d.recovery_action, sum(d.sign)
FROM public.webhook_error_event_rollup_delta d
WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < public.webhook_utc_hour(p_end)
GROUP BY 1, 2, 3, 4, 5, 6, 7
UNION ALL
SELECT p.error_fingerprint, p.event_type, p.error_category, p.recovered, p.failing, p.needs_person,
       p.recovery_action, count(*)
FROM public.webhook_error_events p
WHERE (p.last_failed >= p_start AND p.last_failed < least(public.webhook_rollup_full_from(p_start), p_end))
   OR (p.last_failed >= greatest(public.webhook_utc_hour(p_end), public.webhook_rollup_full_from(p_start))
       AND p.last_failed < p_end)
   OR (tstzrange(p.first_failed, p.last_failed, '[]') @> p_end AND p.first_failed < p_end
       AND p.last_failed >= p_end
       AND public.webhook_error_failed_within(p.stripe_event_id, p.error_fingerprint, p_start, p_end))
GROUP BY 1, 2, 3, 4, 5, 6, 7
$$;

CREATE OR REPLACE TRIGGER webhook_event_attempts_error_rollup_fold AFTER INSERT OR UPDATE OR DELETE ON webhook_event_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_error_rollup_fold_sometimes();

CREATE OR REPLACE TRIGGER webhook_events_error_rollup_fold AFTER INSERT OR UPDATE OR DELETE ON webhook_events
    FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_error_rollup_fold_sometimes();

CREATE OR REPLACE TRIGGER webhook_event_attempts_error_rollup AFTER INSERT OR UPDATE OR DELETE ON webhook_event_attempts
    FOR EACH ROW EXECUTE FUNCTION public.webhook_error_attempts_maintain();

CREATE OR REPLACE TRIGGER webhook_event_attempts_error_rollup_truncate AFTER TRUNCATE ON webhook_event_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_error_attempts_maintain();

CREATE OR REPLACE TRIGGER webhook_events_archive_error_rollup AFTER INSERT OR UPDATE OR DELETE ON webhook_events_archive
    FOR EACH ROW EXECUTE FUNCTION public.webhook_error_archive_maintain();

-- Callable by their owner only (_privileges.sql says why).
SELECT public.webhook_monitor_callable_by(ARRAY[
        'public.webhook_error_rollups_on()',
        'public.webhook_error_events_refresh(text)',
        'public.webhook_error_rollup_fold()',
        'public.webhook_error_rollup_fold_sometimes()',
        'public.webhook_error_rollup_rebuild()',
        'public.webhook_error_attempts_maintain()',
        'public.webhook_error_archive_maintain()',
        'public.webhook_failure_window(timestamptz, timestamptz)',
        'public.webhook_error_failed_within(text, text, timestamptz, timestamptz)',
        'public.webhook_error_event_window(timestamptz, timestamptz)',
        'public.webhook_error_group_failing(text, timestamptz, timestamptz)'
]::regprocedure[]);
