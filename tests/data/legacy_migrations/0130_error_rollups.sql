-- The Errors page's failed attempts and error groups at a cost flat in the size of the
-- history (issue 14), kept exact the way migrations/0110_event_rollups.sql keeps the event
-- rollups: writers only append changes, which are folded now and then; readers add what is
-- pending, read whole hours from the rollups and the window's partial edge hours from rows.
--
-- A *failure* is what queries/errors.sql counts: a failed attempt (webhook_event_attempts,
-- outcome 'failed', at its finished_at), or, for an event failed before attempts were kept
-- (a failed webhook_events row with no attempts row at all), the event itself at
-- coalesce(processed_at, created_at). Its group is its fingerprint (the stored column of
-- migrations/0110 and 0112; 'unspecified error' for a failure without a message).
--
-- * webhook_failure_rollup: per UTC hour of the failure × fingerprint × category, how many
--   failures, and an example (the least message, first 500 characters; kept when that
--   failure later leaves: an example, not a count).
-- * webhook_error_events: one row per event × fingerprint it failed with (its first and
--   last failure, its highest category, and what became of the event: completed or
--   archived, failed now, a person needed, the recovery action and next retry). Exact at
--   every commit: rewritten for an event whenever its failures or its state change.
-- * webhook_error_event_rollup: those rows counted per UTC hour of their *last* failure ×
--   fingerprint × event type × category × state. An event × fingerprint has a failure in
--   [start, end) exactly when its last failure is in [start, end), or it is later and one of
--   its failures (found by probing that event's attempts) is in [start, end): the "crossing"
--   rows, which for the dashboard's windows (ending now) are none, and in general the few
--   events retried across `end`, found by a GiST index on [first, last failure].
-- The triggers follow the event rollup trigger (webhook_events_rollup): while it is
-- disabled (demo-data's bulk load, the receiver bench's "off" rounds) these do nothing, and
-- webhook_rollup_rebuild() recomputes everything after.

CREATE TABLE IF NOT EXISTS webhook_failure_rollup (
    bucket            timestamptz NOT NULL,           -- date_trunc('hour', failed at, 'UTC')
    error_fingerprint text NOT NULL,
    error_category    text NOT NULL DEFAULT '',       -- '' when none
    failures          bigint NOT NULL DEFAULT 0,
    example           text,
    PRIMARY KEY (bucket, error_fingerprint, error_category)
);

CREATE TABLE IF NOT EXISTS webhook_failure_rollup_delta (
    sign              smallint NOT NULL,
    bucket            timestamptz NOT NULL,
    error_fingerprint text NOT NULL,
    error_category    text NOT NULL,
    example           text
);
CREATE INDEX IF NOT EXISTS webhook_failure_rollup_delta_bucket_idx ON webhook_failure_rollup_delta (bucket);

CREATE TABLE IF NOT EXISTS webhook_error_events (
    error_fingerprint text NOT NULL,
    stripe_event_id   text NOT NULL,
    event_type        text NOT NULL DEFAULT '',       -- the event's (or its archived copy's); '' if neither exists
    error_category    text NOT NULL DEFAULT '',       -- the highest category of its failures in this group
    first_failed      timestamptz NOT NULL,
    last_failed       timestamptz NOT NULL,
    failures          integer NOT NULL,
    legacy            boolean NOT NULL,               -- the failure is the event row itself (no attempts row)
    recovered         boolean NOT NULL,               -- completed now, or archived
    failing           boolean NOT NULL,               -- failed now
    needs_person      boolean NOT NULL,               -- failed now, no automatic retry planned
    recovery_action   text NOT NULL DEFAULT '',       -- of the failed event; '' otherwise
    next_retry_at     timestamptz,                    -- of the failed event
    created_at        timestamptz,                    -- the event's
    PRIMARY KEY (error_fingerprint, stripe_event_id)
);
CREATE INDEX IF NOT EXISTS webhook_error_events_event_idx ON webhook_error_events (stripe_event_id);
CREATE INDEX IF NOT EXISTS webhook_error_events_first_idx ON webhook_error_events (error_fingerprint, first_failed);
CREATE INDEX IF NOT EXISTS webhook_error_events_last_idx ON webhook_error_events (error_fingerprint, last_failed);
CREATE INDEX IF NOT EXISTS webhook_error_events_last_failed_idx ON webhook_error_events (last_failed);
CREATE INDEX IF NOT EXISTS webhook_error_events_span_idx
    ON webhook_error_events USING gist (tstzrange(first_failed, last_failed, '[]'));
-- A group's failing events by next retry, and by the time they were received: walked in that
-- order, the window's condition read from the index itself (an index-only scan).
CREATE INDEX IF NOT EXISTS webhook_error_events_retry_idx
    ON webhook_error_events (error_fingerprint, next_retry_at) INCLUDE (first_failed, last_failed, stripe_event_id)
    WHERE failing AND next_retry_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS webhook_error_events_failing_idx
    ON webhook_error_events (error_fingerprint, created_at) INCLUDE (first_failed, last_failed)
    WHERE failing;

CREATE TABLE IF NOT EXISTS webhook_error_event_rollup (
    bucket            timestamptz NOT NULL,           -- date_trunc('hour', last_failed, 'UTC')
    error_fingerprint text NOT NULL,
    event_type        text NOT NULL,
    error_category    text NOT NULL,
    recovered         boolean NOT NULL,
    failing           boolean NOT NULL,
    needs_person      boolean NOT NULL,
    recovery_action   text NOT NULL,
    events            bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, error_fingerprint, event_type, error_category, recovered, failing, needs_person,
                 recovery_action)
);

-- The same counts per UTC day: a window's whole days are read from here, its whole hours
-- outside them from the hourly table (a month is 30 rows per key instead of 720).
CREATE TABLE IF NOT EXISTS webhook_error_event_rollup_daily (
    day               timestamptz NOT NULL,           -- date_trunc('day', last_failed, 'UTC')
    error_fingerprint text NOT NULL,
    event_type        text NOT NULL,
    error_category    text NOT NULL,
    recovered         boolean NOT NULL,
    failing           boolean NOT NULL,
    needs_person      boolean NOT NULL,
    recovery_action   text NOT NULL,
    events            bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, error_fingerprint, event_type, error_category, recovered, failing, needs_person,
                 recovery_action)
);

CREATE TABLE IF NOT EXISTS webhook_error_event_rollup_delta (
    sign              smallint NOT NULL,
    bucket            timestamptz NOT NULL,
    error_fingerprint text NOT NULL,
    event_type        text NOT NULL,
    error_category    text NOT NULL,
    recovered         boolean NOT NULL,
    failing           boolean NOT NULL,
    needs_person      boolean NOT NULL,
    recovery_action   text NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_error_event_rollup_delta_bucket_idx ON webhook_error_event_rollup_delta (bucket);

ALTER TABLE webhook_failure_rollup ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_failure_rollup_delta ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_error_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_error_event_rollup ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_error_event_rollup_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_error_event_rollup_delta ENABLE ROW LEVEL SECURITY;

-- Whether the event rollup trigger is on (these rollups follow it; see above).
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
REVOKE EXECUTE ON FUNCTION public.webhook_error_events_refresh(text) FROM PUBLIC;

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
REVOKE EXECUTE ON FUNCTION public.webhook_error_rollup_fold() FROM PUBLIC;

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
REVOKE EXECUTE ON FUNCTION public.webhook_error_rollup_fold_sometimes() FROM PUBLIC;

-- Recompute everything of this migration from the rows, set-based (after this migration,
-- after a bulk load that ran with the triggers paused). Takes SHARE locks on the tables it
-- reads, so nothing changes meanwhile.
CREATE OR REPLACE FUNCTION public.webhook_error_rollup_rebuild()
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
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
REVOKE EXECUTE ON FUNCTION public.webhook_error_rollup_rebuild() FROM PUBLIC;

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
REVOKE EXECUTE ON FUNCTION public.webhook_error_attempts_maintain() FROM PUBLIC;

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
REVOKE EXECUTE ON FUNCTION public.webhook_error_archive_maintain() FROM PUBLIC;

-- The event rollup's row trigger function (migrations/0110), now also telling the error
-- rollups about the event (the same trigger, so whoever pauses one pauses both). The body
-- is 0110's, unchanged, with that one call added.
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

DROP TRIGGER IF EXISTS webhook_event_attempts_error_rollup ON webhook_event_attempts;
DROP TRIGGER IF EXISTS webhook_event_attempts_error_rollup_truncate ON webhook_event_attempts;
DROP TRIGGER IF EXISTS webhook_event_attempts_error_rollup_fold ON webhook_event_attempts;
DROP TRIGGER IF EXISTS webhook_events_error_rollup_fold ON webhook_events;
DROP TRIGGER IF EXISTS webhook_events_archive_error_rollup ON webhook_events_archive;
CREATE TRIGGER webhook_event_attempts_error_rollup AFTER INSERT OR UPDATE OR DELETE ON webhook_event_attempts
    FOR EACH ROW EXECUTE FUNCTION public.webhook_error_attempts_maintain();
CREATE TRIGGER webhook_event_attempts_error_rollup_truncate AFTER TRUNCATE ON webhook_event_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_error_attempts_maintain();
CREATE TRIGGER webhook_event_attempts_error_rollup_fold AFTER INSERT OR UPDATE OR DELETE ON webhook_event_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_error_rollup_fold_sometimes();
CREATE TRIGGER webhook_events_error_rollup_fold AFTER INSERT OR UPDATE OR DELETE ON webhook_events
    FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_error_rollup_fold_sometimes();
CREATE TRIGGER webhook_events_archive_error_rollup AFTER INSERT OR UPDATE OR DELETE ON webhook_events_archive
    FOR EACH ROW EXECUTE FUNCTION public.webhook_error_archive_maintain();

-- webhook_rollup_rebuild() (demo-data calls it after its bulk load) now rebuilds both: the
-- event rollups (0110's function, renamed) and these.
ALTER FUNCTION public.webhook_rollup_rebuild() RENAME TO webhook_rollup_rebuild_events;
CREATE FUNCTION public.webhook_rollup_rebuild()
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
REVOKE EXECUTE ON FUNCTION public.webhook_rollup_rebuild() FROM PUBLIC;

SELECT public.webhook_error_rollup_rebuild();

-- Failures in [start, end) in webhook_failure_rollup's shape: whole hours from the rollup
-- (and pending changes), the partial edge hours from the rows (two index ranges each, as
-- webhook_window_counts), so a sum of failures is a count over the raw failures.
CREATE OR REPLACE FUNCTION public.webhook_failure_window(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (bucket timestamptz, error_fingerprint text, error_category text, failures bigint, example text)
LANGUAGE sql
STABLE
AS $$
SELECT r.bucket, r.error_fingerprint, r.error_category, r.failures, r.example
FROM public.webhook_failure_rollup r
WHERE r.bucket >= public.webhook_rollup_full_from(p_start) AND r.bucket < date_trunc('hour', p_end, 'UTC')
  AND r.failures <> 0
UNION ALL
SELECT d.bucket, d.error_fingerprint, d.error_category, sum(d.sign), min(d.example)
FROM public.webhook_failure_rollup_delta d
WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < date_trunc('hour', p_end, 'UTC')
GROUP BY 1, 2, 3
UNION ALL
SELECT date_trunc('hour', f.failed_at, 'UTC'), f.fingerprint, coalesce(f.category, ''), count(*),
       min(left(f.error_message, 500))
FROM (
    SELECT a.finished_at AS failed_at, a.error_fingerprint AS fingerprint, a.error_category AS category, a.error_message
    FROM public.webhook_event_attempts a
    WHERE a.outcome = 'failed'
      AND ((a.finished_at >= p_start AND a.finished_at < least(public.webhook_rollup_full_from(p_start), p_end))
           OR (a.finished_at >= greatest(date_trunc('hour', p_end, 'UTC'), public.webhook_rollup_full_from(p_start))
               AND a.finished_at < p_end))
    UNION ALL
    SELECT coalesce(e.processed_at, e.created_at), coalesce(nullif(e.error_fingerprint, ''), 'unspecified error'),
           e.error_category, e.error_message
    FROM public.webhook_events e
    WHERE e.processing_status = 'failed'
      AND ((coalesce(e.processed_at, e.created_at) >= p_start
            AND coalesce(e.processed_at, e.created_at) < least(public.webhook_rollup_full_from(p_start), p_end))
           OR (coalesce(e.processed_at, e.created_at) >= greatest(date_trunc('hour', p_end, 'UTC'),
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

-- The first UTC midnight at or after a moment.
CREATE OR REPLACE FUNCTION public.webhook_rollup_day_from(p_moment timestamptz)
RETURNS timestamptz
LANGUAGE sql
STABLE
AS $$
SELECT CASE WHEN date_trunc('day', p_moment, 'UTC') = p_moment THEN p_moment
            ELSE date_trunc('day', p_moment, 'UTC') + interval '1 day' END
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
  AND r.day < date_trunc('day', date_trunc('hour', p_end, 'UTC'), 'UTC')
  AND r.events <> 0
UNION ALL
SELECT r.error_fingerprint, r.event_type, r.error_category, r.recovered, r.failing, r.needs_person,
       r.recovery_action, r.events
FROM public.webhook_error_event_rollup r
WHERE ((r.bucket >= public.webhook_rollup_full_from(p_start)
        AND r.bucket < least(public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start)),
                             date_trunc('hour', p_end, 'UTC')))
       OR (r.bucket >= greatest(date_trunc('day', date_trunc('hour', p_end, 'UTC'), 'UTC'),
                                public.webhook_rollup_day_from(public.webhook_rollup_full_from(p_start)))
           AND r.bucket < date_trunc('hour', p_end, 'UTC')))
  AND r.events <> 0
UNION ALL
SELECT d.error_fingerprint, d.event_type, d.error_category, d.recovered, d.failing, d.needs_person,
       d.recovery_action, sum(d.sign)
FROM public.webhook_error_event_rollup_delta d
WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < date_trunc('hour', p_end, 'UTC')
GROUP BY 1, 2, 3, 4, 5, 6, 7
UNION ALL
SELECT p.error_fingerprint, p.event_type, p.error_category, p.recovered, p.failing, p.needs_person,
       p.recovery_action, count(*)
FROM public.webhook_error_events p
WHERE (p.last_failed >= p_start AND p.last_failed < least(public.webhook_rollup_full_from(p_start), p_end))
   OR (p.last_failed >= greatest(date_trunc('hour', p_end, 'UTC'), public.webhook_rollup_full_from(p_start))
       AND p.last_failed < p_end)
   OR (tstzrange(p.first_failed, p.last_failed, '[]') @> p_end AND p.first_failed < p_end
       AND p.last_failed >= p_end
       AND public.webhook_error_failed_within(p.stripe_event_id, p.error_fingerprint, p_start, p_end))
GROUP BY 1, 2, 3, 4, 5, 6, 7
$$;
