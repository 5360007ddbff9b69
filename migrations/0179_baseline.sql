-- The schema as the numbered migrations 0001-0175 left it, in one file: tables, columns,
-- constraints, indexes, row-level security, and error_fingerprint (the one function a
-- table is built on: three stored columns are computed with it, so changing it is a new
-- function and a numbered migration that rewrites them, never an edit in place).
--
-- Every other function, view and trigger lives in migrations/functions/*.sql, applied by
-- `python -m jobs migrate` after the numbered migrations and again whenever a file changes.
-- A database migrated before this file existed (its ledger holds 0175_merge_anti_join_guard.sql)
-- already has all of this: migrate records this file as applied without running it.
--
-- Each section keeps the comments of the migration it comes from (named in its heading);
-- data fixes that only concerned databases already holding rows are left out, as are the
-- function bodies those migrations restated. From here on numbered migrations are frozen
-- again: a new table or index is a new file numbered 0180 or above.

-- ---- 0001_webhook_events -------------------------------------------------------------------
-- The audit trail: one row per Stripe event, written by the webhook handler through the
-- tracking functions. Columns of the seed document, plus what monitoring needs.
CREATE TABLE IF NOT EXISTS webhook_events (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stripe_event_id        text NOT NULL CONSTRAINT webhook_events_stripe_event_id_key UNIQUE,
    event_type             text NOT NULL,
    processing_status      text NOT NULL DEFAULT 'pending'
        CONSTRAINT webhook_events_status_check
        CHECK (processing_status IN ('pending', 'processing', 'completed', 'failed')),
    payload                jsonb NOT NULL,
    error_message          text,
    attempts               integer NOT NULL DEFAULT 0 CONSTRAINT webhook_events_attempts_check CHECK (attempts >= 0),
    created_at             timestamptz NOT NULL DEFAULT now(),
    processed_at           timestamptz,
    processing_duration_ms integer CONSTRAINT webhook_events_duration_check CHECK (processing_duration_ms >= 0),
    -- Stripe's own event time (event.created); deliveries can arrive late and out of order.
    stripe_created_at      timestamptz,
    livemode               boolean NOT NULL DEFAULT false,
    -- When the current attempt began: a 'processing' row older than the stale threshold
    -- belongs to a worker that died and may be reclaimed.
    processing_started_at  timestamptz,
    error_category         text CONSTRAINT webhook_events_error_category_check
        CHECK (error_category IN ('network', 'validation', 'database', 'stripe', 'unknown')),
    error_details          jsonb,
    updated_at             timestamptz NOT NULL DEFAULT now()
);
-- Every dashboard view reads a time window of events.
CREATE INDEX IF NOT EXISTS webhook_events_created_at_idx ON webhook_events (created_at);
-- The seed's status index, kept partial: completed rows are the bulk and are never looked
-- up by status alone, while failed, stuck and pending rows are.
CREATE INDEX IF NOT EXISTS webhook_events_open_status_idx
    ON webhook_events (processing_status, created_at)
    WHERE processing_status <> 'completed';
-- Completed events older than the retention period move here in batches (cleanup job).
CREATE TABLE IF NOT EXISTS webhook_events_archive (
    id                     uuid PRIMARY KEY,
    stripe_event_id        text NOT NULL CONSTRAINT webhook_events_archive_stripe_event_id_key UNIQUE,
    event_type             text NOT NULL,
    processing_status      text NOT NULL,
    payload                jsonb NOT NULL,
    error_message          text,
    attempts               integer NOT NULL,
    created_at             timestamptz NOT NULL,
    processed_at           timestamptz,
    processing_duration_ms integer,
    stripe_created_at      timestamptz,
    livemode               boolean NOT NULL DEFAULT false,
    processing_started_at  timestamptz,
    error_category         text,
    error_details          jsonb,
    updated_at             timestamptz NOT NULL,
    archived_at            timestamptz NOT NULL DEFAULT now(),
    cleanup_run_id         bigint
);
CREATE INDEX IF NOT EXISTS webhook_events_archive_created_at_idx ON webhook_events_archive (created_at);
-- Supabase serves public tables through its REST API: with row-level security on and no
-- policy, only the table owner (this project's jobs) and roles given a policy can read.
ALTER TABLE webhook_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_events_archive ENABLE ROW LEVEL SECURITY;

-- ---- 0002_job_runs -------------------------------------------------------------------------
-- One row per run of any job (migrate excepted), whatever its trigger: the Health page's
-- job history and the "last success / last failure" tiles read it.
CREATE TABLE IF NOT EXISTS job_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job         text NOT NULL,
    status      text NOT NULL DEFAULT 'running'
        CONSTRAINT job_runs_status_check
        CHECK (status IN ('running', 'completed', 'needs_review', 'failed', 'skipped')),
    trigger     text NOT NULL DEFAULT 'cli'
        CONSTRAINT job_runs_trigger_check CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'test')),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    duration_ms integer,
    summary     jsonb NOT NULL DEFAULT '{}'::jsonb,
    error       text,
    host        text
);
CREATE INDEX IF NOT EXISTS job_runs_job_started_idx ON job_runs (job, started_at DESC);
ALTER TABLE job_runs ENABLE ROW LEVEL SECURITY;

-- ---- 0010_tracking -------------------------------------------------------------------------
-- (its functions and triggers: migrations/functions/tracking.sql)
-- What the tracking functions (functions/tracking.sql) record besides the seed's columns.
-- What the handler did with the event, e.g. 'registration_completed' or 'ignored'.
ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS outcome text;
-- The registration the event touched, for drill-down from either side.
ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS registration_id uuid;
ALTER TABLE webhook_events_archive ADD COLUMN IF NOT EXISTS outcome text;
ALTER TABLE webhook_events_archive ADD COLUMN IF NOT EXISTS registration_id uuid;
CREATE INDEX IF NOT EXISTS webhook_events_registration_idx
    ON webhook_events (registration_id) WHERE registration_id IS NOT NULL;

-- ---- 0020_reconciliation -------------------------------------------------------------------
-- Reconciliation of Stripe Checkout Sessions against local registrations.
-- The five report counters are the seed document's ReconciliationReport.
CREATE TABLE IF NOT EXISTS reconciliation_runs (
    id                        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status                    text NOT NULL DEFAULT 'running'
        CONSTRAINT reconciliation_runs_status_check
        CHECK (status IN ('running', 'completed', 'failed')),
    trigger                   text NOT NULL DEFAULT 'cli'
        CONSTRAINT reconciliation_runs_trigger_check
        CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup', 'test')),
    lookback_days             integer NOT NULL CONSTRAINT reconciliation_runs_lookback_check CHECK (lookback_days > 0),
    dry_run                   boolean NOT NULL DEFAULT false,
    window_start              timestamptz NOT NULL,
    window_end                timestamptz NOT NULL,
    started_at                timestamptz NOT NULL,
    finished_at               timestamptz,
    duration_ms               integer,
    stripe_payments_found     integer NOT NULL DEFAULT 0,
    local_registrations_found integer NOT NULL DEFAULT 0,
    mismatches_detected       integer NOT NULL DEFAULT 0,
    auto_fixed_count          integer NOT NULL DEFAULT 0,
    manual_review_needed      integer NOT NULL DEFAULT 0,
    -- Progress, updated while the run goes so the dashboard can show it live.
    sessions_checked          integer NOT NULL DEFAULT 0,
    pages_read                integer NOT NULL DEFAULT 0,
    stripe_requests           integer NOT NULL DEFAULT 0,
    -- Mismatches a person already resolved (not reopened) and auto-fixes a concurrent
    -- webhook made unnecessary (the row had changed by the time the fix ran).
    already_resolved_count    integer NOT NULL DEFAULT 0,
    fixes_superseded_count    integer NOT NULL DEFAULT 0,
    job_run_id                bigint,
    error                     text
);
CREATE INDEX IF NOT EXISTS reconciliation_runs_started_idx ON reconciliation_runs (started_at DESC);
CREATE TABLE IF NOT EXISTS reconciliation_items (
    id                         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id                     bigint NOT NULL REFERENCES reconciliation_runs (id),
    kind                       text NOT NULL
        CONSTRAINT reconciliation_items_kind_check
        CHECK (kind IN ('paid_but_pending', 'expired_but_pending', 'paid_but_failed',
                        'paid_no_registration', 'completed_not_paid',
                        'completed_missing_in_stripe', 'amount_mismatch')),
    stripe_checkout_session_id text,
    registration_id            uuid,
    action                     text NOT NULL
        CONSTRAINT reconciliation_items_action_check CHECK (action IN ('auto_fixed', 'manual_review')),
    severity                   text NOT NULL DEFAULT 'warning'
        CONSTRAINT reconciliation_items_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
    -- A dry run records what it would do; such items never block or count as real ones.
    dry_run                    boolean NOT NULL DEFAULT false,
    -- Both sides' facts as seen when the mismatch was found.
    details                    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    resolved_at                timestamptz,
    resolved_by                text,
    resolution_note            text,
    -- A later run that finds the same open mismatch again updates these instead of
    -- opening a second item.
    last_seen_run_id           bigint,
    last_seen_at               timestamptz
);
CREATE INDEX IF NOT EXISTS reconciliation_items_run_idx ON reconciliation_items (run_id);
-- The review queue: open manual items, newest first.
CREATE INDEX IF NOT EXISTS reconciliation_items_open_idx ON reconciliation_items (created_at DESC)
    WHERE action = 'manual_review' AND resolved_at IS NULL AND NOT dry_run;
-- At most one open review item per mismatch, however often reconciliation runs.
CREATE UNIQUE INDEX IF NOT EXISTS reconciliation_items_one_open_idx
    ON reconciliation_items (kind, coalesce(stripe_checkout_session_id, ''), coalesce(registration_id::text, ''))
    WHERE action = 'manual_review' AND resolved_at IS NULL AND NOT dry_run;
ALTER TABLE reconciliation_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconciliation_items ENABLE ROW LEVEL SECURITY;

-- ---- 0030_cleanup --------------------------------------------------------------------------
-- Cleanup runs and the archive of removed stale registrations.
CREATE TABLE IF NOT EXISTS cleanup_runs (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status                  text NOT NULL DEFAULT 'running'
        CONSTRAINT cleanup_runs_status_check
        CHECK (status IN ('running', 'completed', 'needs_review', 'failed')),
    trigger                 text NOT NULL DEFAULT 'cli'
        CONSTRAINT cleanup_runs_trigger_check CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'test')),
    dry_run                 boolean NOT NULL DEFAULT false,
    pending_days            integer NOT NULL,
    events_days             integer NOT NULL,
    -- Rows created before these instants were in scope (now minus the two retentions).
    pending_cutoff          timestamptz,
    events_cutoff           timestamptz,
    -- The stale-pending step was left out (--skip-registrations): no registration was looked at.
    registrations_skipped   boolean NOT NULL DEFAULT false,
    started_at              timestamptz NOT NULL,
    finished_at             timestamptz,
    duration_ms             integer,
    stale_pending_found     integer NOT NULL DEFAULT 0,
    -- Moved to registrations_archive (a dry run: would have been).
    registrations_archived  integer NOT NULL DEFAULT 0,
    -- Stripe says paid: handed to reconciliation, never removed.
    registrations_kept_paid integer NOT NULL DEFAULT 0,
    -- Stripe's session can still be paid (open, or complete awaiting a delayed payment).
    registrations_kept_open integer NOT NULL DEFAULT 0,
    -- Not judged this time (Stripe did not answer, or a session of the other Stripe mode):
    -- left alone. Rows a webhook changed meanwhile are counted in details.changed_meanwhile.
    registrations_unchecked integer NOT NULL DEFAULT 0,
    registrations_fixed     integer NOT NULL DEFAULT 0,
    registrations_queued    integer NOT NULL DEFAULT 0,
    reconciliation_run_id   bigint,
    events_matched          integer NOT NULL DEFAULT 0,
    events_archived         integer NOT NULL DEFAULT 0,
    event_batches           integer NOT NULL DEFAULT 0,
    -- Old failed (and still pending/processing) events, which cleanup never removes.
    events_kept_failed      integer NOT NULL DEFAULT 0,
    events_kept_open        integer NOT NULL DEFAULT 0,
    details                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    error                   text
);
CREATE INDEX IF NOT EXISTS cleanup_runs_started_idx ON cleanup_runs (started_at DESC);
-- Stale pending registrations removed by cleanup, kept so a person can still look.
CREATE TABLE IF NOT EXISTS registrations_archive (
    id                         uuid PRIMARY KEY,
    stripe_checkout_session_id text,
    email                      text,
    processing_status          text NOT NULL,
    amount_total               integer,
    currency                   text,
    created_at                 timestamptz NOT NULL,
    completed_at               timestamptz,
    archived_at                timestamptz NOT NULL DEFAULT now(),
    -- no_session, session_not_found or session_expired
    archive_reason             text NOT NULL,
    stripe_session_status      text,
    stripe_payment_status      text,
    cleanup_run_id             bigint REFERENCES cleanup_runs (id),
    -- The whole row as it was, whatever columns the app's registrations table has.
    row_data                   jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS registrations_archive_created_at_idx ON registrations_archive (created_at);
CREATE INDEX IF NOT EXISTS registrations_archive_session_idx
    ON registrations_archive (stripe_checkout_session_id) WHERE stripe_checkout_session_id IS NOT NULL;
ALTER TABLE cleanup_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE registrations_archive ENABLE ROW LEVEL SECURITY;

-- ---- 0031_health ---------------------------------------------------------------------------
-- Database health over time: one row per snapshot (health-snapshot job, hourly by default,
-- and after every cleanup), so the Health page can chart growth.
CREATE TABLE IF NOT EXISTS database_health_snapshots (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    taken_at            timestamptz NOT NULL,
    trigger             text NOT NULL DEFAULT 'cli'
        CONSTRAINT database_health_snapshots_trigger_check
        CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup', 'test')),
    -- pg_database_size(current_database())
    database_size_bytes bigint NOT NULL,
    -- One entry per table of the schema: {"name": {"total_bytes", "row_estimate",
    -- "oldest_row_at"}}; row_estimate is null until PostgreSQL has analysed the table,
    -- oldest_row_at only for the project's own tables.
    tables              jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS database_health_snapshots_taken_idx ON database_health_snapshots (taken_at);
ALTER TABLE database_health_snapshots ENABLE ROW LEVEL SECURITY;

-- ---- 0032_schedule -------------------------------------------------------------------------
-- Scheduled fire times already taken. Several schedulers may run (one per machine, for
-- availability): the one that inserts (job, fire_time) first runs the job, the others skip
-- it, so a quick job is not run twice in a row either. The advisory lock each job holds
-- still keeps any two runs from overlapping.
CREATE TABLE IF NOT EXISTS scheduled_runs (
    job        text NOT NULL,
    fire_time  timestamptz NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    host       text,
    PRIMARY KEY (job, fire_time)
);
ALTER TABLE scheduled_runs ENABLE ROW LEVEL SECURITY;

-- ---- 0040_dashboard_indexes ----------------------------------------------------------------
-- Every overview query aggregates one time window of events by status, type and duration.
-- With those columns in the index, PostgreSQL answers them from the index alone (an
-- index-only scan) instead of visiting each event's row, payload and all: on 1M events a
-- 7-day window's KPIs, volume chart, status breakdown and type chart each ran 2-4x faster
-- (EXPLAIN ANALYZE figures in docs/performance.md). It replaces the plain created_at index,
-- which it serves in every use, so inserts maintain no extra index.
-- Built without CONCURRENTLY because migrations run in a transaction: on a large live table,
-- create it by hand with CREATE INDEX CONCURRENTLY first, and this statement does nothing.
CREATE INDEX IF NOT EXISTS webhook_events_window_idx
    ON webhook_events (created_at)
    INCLUDE (processing_status, event_type, processing_duration_ms, processing_started_at);
DROP INDEX IF EXISTS webhook_events_created_at_idx;

-- ---- 0050_job_run_progress -----------------------------------------------------------------
-- A job started from the dashboard runs as its own process ("python -m jobs <command>"); the
-- dashboard follows it through its job_runs row. pid (with host) finds the row of the process
-- it started; progress is what the job has done so far (a JSON object the job writes as it
-- goes, e.g. {"done": 1200, "total": 5000, "message": "batch 3"}), left in place at the end.
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS pid integer;
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS progress jsonb;
CREATE INDEX IF NOT EXISTS job_runs_host_pid_idx ON job_runs (host, pid) WHERE pid IS NOT NULL;
-- Who started a run from the dashboard (the signed-in user's e-mail or name); NULL for runs
-- started from a terminal, cron or the scheduler.
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS started_by text;

-- ---- 0055_integrity ------------------------------------------------------------------------
ALTER TABLE reconciliation_runs DROP CONSTRAINT IF EXISTS reconciliation_runs_job_run_fkey;
ALTER TABLE reconciliation_runs ADD CONSTRAINT reconciliation_runs_job_run_fkey
    FOREIGN KEY (job_run_id) REFERENCES job_runs (id) ON DELETE SET NULL;
ALTER TABLE reconciliation_items DROP CONSTRAINT IF EXISTS reconciliation_items_last_seen_run_fkey;
ALTER TABLE reconciliation_items ADD CONSTRAINT reconciliation_items_last_seen_run_fkey
    FOREIGN KEY (last_seen_run_id) REFERENCES reconciliation_runs (id) ON DELETE SET NULL;
ALTER TABLE cleanup_runs DROP CONSTRAINT IF EXISTS cleanup_runs_reconciliation_run_fkey;
ALTER TABLE cleanup_runs ADD CONSTRAINT cleanup_runs_reconciliation_run_fkey
    FOREIGN KEY (reconciliation_run_id) REFERENCES reconciliation_runs (id) ON DELETE SET NULL;
ALTER TABLE webhook_events_archive DROP CONSTRAINT IF EXISTS webhook_events_archive_cleanup_run_fkey;
ALTER TABLE webhook_events_archive ADD CONSTRAINT webhook_events_archive_cleanup_run_fkey
    FOREIGN KEY (cleanup_run_id) REFERENCES cleanup_runs (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE webhook_events_archive VALIDATE CONSTRAINT webhook_events_archive_cleanup_run_fkey;
ALTER TABLE job_runs DROP CONSTRAINT IF EXISTS job_runs_trigger_check;
ALTER TABLE job_runs ADD CONSTRAINT job_runs_trigger_check
    CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup'));
ALTER TABLE reconciliation_runs DROP CONSTRAINT IF EXISTS reconciliation_runs_trigger_check;
ALTER TABLE reconciliation_runs ADD CONSTRAINT reconciliation_runs_trigger_check
    CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup'));
ALTER TABLE cleanup_runs DROP CONSTRAINT IF EXISTS cleanup_runs_trigger_check;
ALTER TABLE cleanup_runs ADD CONSTRAINT cleanup_runs_trigger_check
    CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup'));
ALTER TABLE database_health_snapshots DROP CONSTRAINT IF EXISTS database_health_snapshots_trigger_check;
ALTER TABLE database_health_snapshots ADD CONSTRAINT database_health_snapshots_trigger_check
    CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup'));
-- Why cleanup archived a registration (jobs.cleanup_decisions.ARCHIVE_REASONS).
ALTER TABLE registrations_archive DROP CONSTRAINT IF EXISTS registrations_archive_reason_check;
ALTER TABLE registrations_archive ADD CONSTRAINT registrations_archive_reason_check
    CHECK (archive_reason IN ('session_expired', 'session_not_found', 'no_session'));

-- ---- 0060_error_policy ---------------------------------------------------------------------
-- (its functions and triggers: migrations/functions/tracking.sql)
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

-- ---- 0061_error_fingerprint ----------------------------------------------------------------
-- The error fingerprint, declared once for every query that groups errors (the Errors page's
-- "Top error messages" and error groups, the health report): the message with UUIDs,
-- Stripe-style ids (evt_1Nx..., cs_test_a1...), long hex strings, e-mail addresses and
-- numbers replaced by placeholders and whitespace collapsed, at most 300 characters, so
-- "timeout after 3012 ms for evt_1" and "timeout after 95 ms for evt_2" are one error.
CREATE OR REPLACE FUNCTION public.error_fingerprint(p_message text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = ''
AS $$
    SELECT left(btrim(regexp_replace(
               regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
                   p_message,
                   '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>', 'gi'),
                   '\m[a-z]{2,10}_(?:[a-z]+_)?(?=[A-Za-z_]*[0-9])[A-Za-z0-9]{6,}\M', '<id>', 'g'),
                   '\m[0-9a-f]{12,}\M', '<hex>', 'gi'),
                   '[^\s<>@]+@[^\s<>@]+\.[a-z]{2,}', '<email>', 'gi'),
                   '[0-9]+(\.[0-9]+)?', '<n>', 'g'),
               '\s+', ' ', 'g')), 300)
$$;

-- ---- 0070_alerts ---------------------------------------------------------------------------
-- (its functions and triggers: migrations/functions/alerts.sql)
-- Alerting (python -m jobs watch): what fires, what was sent where, and who silenced what.
--
-- The life cycle is Alertmanager's: a rule's condition first seen is 'pending' (a row of
-- alert_pending), becomes a 'firing' row of alerts once it has held for the rule's hold time,
-- and that row turns 'resolved' when the condition clears. A pending condition that clears
-- before its hold time (a blip Stripe's own retry fixed) leaves no alert and sends nothing.

CREATE TABLE IF NOT EXISTS alerts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule             text NOT NULL
        CONSTRAINT alerts_rule_check
        CHECK (rule IN ('payment_event_failed', 'failure_rate', 'silence', 'stuck_events',
                        'missed_events', 'review_needed', 'job_failed')),
    -- rule + subject (e.g. 'payment_event_failed:checkout.session.completed'): one incident.
    fingerprint      text NOT NULL,
    severity         text NOT NULL
        CONSTRAINT alerts_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
    status           text NOT NULL DEFAULT 'firing'
        CONSTRAINT alerts_status_check CHECK (status IN ('firing', 'resolved')),
    summary          text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- When the condition began (e.g. the first failed delivery's commit), when the monitor
    -- fired, resolved and last told anyone. fired_at - started_at is the time to detect.
    started_at       timestamptz NOT NULL,
    fired_at         timestamptz NOT NULL,
    resolved_at      timestamptz,
    last_notified_at timestamptz,
    -- Last evaluation that still saw the condition.
    last_seen_at     timestamptz NOT NULL,
    -- Dashboard page that shows the subject (path under MONITOR_DASHBOARD_URL).
    page             text,
    -- An acknowledged alert sends no reminders; it still resolves (and says so).
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    CONSTRAINT alerts_resolved_check CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
-- At most one firing alert per fingerprint: a burst is one alert, not one per event.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_firing_per_fingerprint
    ON alerts (fingerprint) WHERE status = 'firing';
CREATE INDEX IF NOT EXISTS alerts_fired_at_idx ON alerts (fired_at DESC);
-- Conditions seen but not (yet) held long enough to fire.
CREATE TABLE IF NOT EXISTS alert_pending (
    fingerprint   text PRIMARY KEY,
    rule          text NOT NULL,
    severity      text NOT NULL,
    summary       text NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at    timestamptz NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL
);
-- One row per (alert, channel, kind, sequence): the outbox watch processes deliver from.
-- A row is claimed (claimed_by/claimed_until, FOR UPDATE SKIP LOCKED) before sending, so
-- several watch processes never send the same notification twice.
CREATE TABLE IF NOT EXISTS alert_notifications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel         text NOT NULL
        CONSTRAINT alert_notifications_channel_check CHECK (channel IN ('webhook', 'slack', 'email')),
    kind            text NOT NULL
        CONSTRAINT alert_notifications_kind_check CHECK (kind IN ('firing', 'resolved', 'reminder')),
    -- 0 for firing and resolved; reminders count up.
    sequence        integer NOT NULL DEFAULT 0,
    -- 'pending': queued, not tried yet; 'failed': the last attempt failed (tried again at
    -- next_attempt_at while that is set); 'sent': delivered.
    status          text NOT NULL DEFAULT 'pending'
        CONSTRAINT alert_notifications_status_check CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    error           text,
    -- Every attempt: [{"at": ..., "ok": bool, "error": ..., "by": host}], oldest first.
    attempt_log     jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz,
    claimed_by      text,
    claimed_until   timestamptz,
    sent_at         timestamptz,
    CONSTRAINT alert_notifications_once UNIQUE (alert_id, channel, kind, sequence)
);
CREATE INDEX IF NOT EXISTS alert_notifications_due_idx
    ON alert_notifications (next_attempt_at) WHERE status <> 'sent' AND next_attempt_at IS NOT NULL;
-- Silences: no notification for a fingerprint until a time, recorded with who set it.
CREATE TABLE IF NOT EXISTS alert_silences (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint text NOT NULL,
    until       timestamptz NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    reason      text
);
CREATE INDEX IF NOT EXISTS alert_silences_fingerprint_idx ON alert_silences (fingerprint, until DESC);
ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_silences ENABLE ROW LEVEL SECURITY;

-- ---- 0080_sweep ----------------------------------------------------------------------------
-- Missed events: the sweep asks Stripe's Events API which events exist and records those
-- that never reached webhook_events (nor its archive).

-- One row per sweep (python -m jobs sweep).
CREATE TABLE IF NOT EXISTS sweep_runs (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status                text NOT NULL DEFAULT 'running'
        CONSTRAINT sweep_runs_status_check
        CHECK (status IN ('running', 'completed', 'needs_review', 'failed')),
    trigger               text NOT NULL DEFAULT 'cli'
        CONSTRAINT sweep_runs_trigger_check CHECK (trigger IN ('cli', 'dashboard', 'schedule')),
    dry_run               boolean NOT NULL DEFAULT false,
    replay                boolean NOT NULL DEFAULT false,
    lookback_hours        integer NOT NULL
        CONSTRAINT sweep_runs_lookback_check CHECK (lookback_hours BETWEEN 1 AND 720),
    -- Stripe events created in [window_start, window_end) were asked for.
    window_start          timestamptz NOT NULL,
    window_end            timestamptz NOT NULL,
    started_at            timestamptz NOT NULL,
    finished_at           timestamptz,
    duration_ms           integer,
    -- Distinct events Stripe listed (both passes), and of those the ones it reports
    -- as not delivered to every endpoint (delivery_success=false).
    stripe_events_found   integer NOT NULL DEFAULT 0,
    undelivered_found     integer NOT NULL DEFAULT 0,
    -- Listed events with no row locally; of those, the ones Stripe counts as delivered
    -- (the endpoint answered 2xx without recording) and the ones seen for the first time.
    missing_found         integer NOT NULL DEFAULT 0,
    delivered_unrecorded  integer NOT NULL DEFAULT 0,
    missing_new           integer NOT NULL DEFAULT 0,
    replayed              integer NOT NULL DEFAULT 0,
    recovered             integer NOT NULL DEFAULT 0,
    -- Missed events still without a completed row when the run ended.
    still_missing         integer NOT NULL DEFAULT 0,
    stripe_requests       integer NOT NULL DEFAULT 0,
    stripe_pages          integer NOT NULL DEFAULT 0,
    details               jsonb NOT NULL DEFAULT '{}'::jsonb,
    error                 text
);
CREATE INDEX IF NOT EXISTS sweep_runs_started_idx ON sweep_runs (started_at DESC);
-- One row per Stripe event found missing, kept after recovery as history.
CREATE TABLE IF NOT EXISTS missed_events (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stripe_event_id       text NOT NULL CONSTRAINT missed_events_stripe_event_id_key UNIQUE,
    event_type            text NOT NULL,
    stripe_created_at     timestamptz NOT NULL,
    livemode              boolean NOT NULL DEFAULT false,
    -- missing: no row locally; replayed: delivered by --replay, not completed yet;
    -- arrived: a row appeared that is not completed (the failure policy owns it now);
    -- recovered: a completed row exists.
    status                text NOT NULL DEFAULT 'missing'
        CONSTRAINT missed_events_status_check
        CHECK (status IN ('missing', 'replayed', 'arrived', 'recovered')),
    found_at              timestamptz NOT NULL,
    sweep_run_id          bigint NOT NULL REFERENCES sweep_runs (id),
    last_seen_at          timestamptz NOT NULL,
    last_sweep_run_id     bigint REFERENCES sweep_runs (id),
    -- Stripe's view when last listed: endpoints still pending, and whether it counts the
    -- event as delivered (a "delivered" event with no row was answered 2xx unrecorded).
    pending_webhooks      integer,
    stripe_says_delivered boolean NOT NULL DEFAULT false,
    -- What the event concerns: data.object's id and type, and its amount when it has one.
    object_id             text,
    object_type           text,
    amount                bigint,
    currency              text,
    -- Stripe stops retrying a failed delivery 3 days after the event; the Events API
    -- forgets the event after 30 days (then it can no longer be listed or fetched).
    retry_deadline        timestamptz NOT NULL,
    retention_deadline    timestamptz NOT NULL,
    -- The event as Stripe listed it, so it can be replayed even after Stripe forgets it.
    payload               jsonb NOT NULL,
    replayed_at           timestamptz,
    replay_attempts       integer NOT NULL DEFAULT 0,
    last_replay_error     text,
    recovered_at          timestamptz
);
CREATE INDEX IF NOT EXISTS missed_events_open_idx
    ON missed_events (stripe_created_at) WHERE status IN ('missing', 'replayed');
CREATE INDEX IF NOT EXISTS missed_events_run_idx ON missed_events (sweep_run_id);
ALTER TABLE sweep_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE missed_events ENABLE ROW LEVEL SECURITY;

-- ---- 0081_sweep_links ----------------------------------------------------------------------
-- sweep_runs accepts the one list of triggers every run table accepts (core/runs.py), and
-- points at its job_runs row like reconciliation_runs does.
ALTER TABLE sweep_runs DROP CONSTRAINT IF EXISTS sweep_runs_trigger_check;
ALTER TABLE sweep_runs ADD CONSTRAINT sweep_runs_trigger_check
    CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup'));
ALTER TABLE sweep_runs ADD COLUMN IF NOT EXISTS job_run_id bigint
    CONSTRAINT sweep_runs_job_run_fkey REFERENCES job_runs (id);

-- ---- 0090_health_reports -------------------------------------------------------------------
-- The weekly health report (python -m jobs health-report): one row per report built, with
-- the HTML and text exactly as mailed, so the Health page can show past reports and a failed
-- send can be retried by the next run with the same content.
CREATE TABLE IF NOT EXISTS health_reports (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL,
    trigger       text NOT NULL DEFAULT 'cli'
        CONSTRAINT health_reports_trigger_check
        CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'test')),
    -- sending: being mailed now; sent: the server took it for at least one recipient;
    -- failed: not sent, retried by the next run that sends; dry_run: written, never mailed;
    -- not_sent: a scheduled run without MONITOR_SMTP_URL or recipients (kept for the page).
    status        text NOT NULL
        CONSTRAINT health_reports_status_check
        CHECK (status IN ('sending', 'sent', 'failed', 'dry_run', 'not_sent')),
    subject       text NOT NULL,
    recipients    text[] NOT NULL DEFAULT '{}',
    html          text NOT NULL,
    text          text NOT NULL,
    -- The numbers the report was built from (what --json prints).
    data          jsonb NOT NULL DEFAULT '{}'::jsonb,
    attempts      integer NOT NULL DEFAULT 0,
    sent_at       timestamptz,
    last_attempt_at timestamptz,
    error         text,
    job_run_id    bigint,
    CONSTRAINT health_reports_period_check CHECK (period_end > period_start)
);
CREATE INDEX IF NOT EXISTS health_reports_created_idx ON health_reports (created_at);
CREATE INDEX IF NOT EXISTS health_reports_failed_idx ON health_reports (id) WHERE status = 'failed';
ALTER TABLE health_reports ENABLE ROW LEVEL SECURITY;

-- ---- 0091_health_reports_integrity ---------------------------------------------------------
ALTER TABLE health_reports DROP CONSTRAINT IF EXISTS health_reports_trigger_check;
ALTER TABLE health_reports ADD CONSTRAINT health_reports_trigger_check
    CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'cleanup'));
ALTER TABLE health_reports DROP CONSTRAINT IF EXISTS health_reports_job_run_fkey;
ALTER TABLE health_reports ADD CONSTRAINT health_reports_job_run_fkey
    FOREIGN KEY (job_run_id) REFERENCES job_runs (id) ON DELETE SET NULL;

-- ---- 0100_login_throttle -------------------------------------------------------------------
-- (its functions and triggers: migrations/functions/login_throttle.sql)
-- The dashboard's password throttle, shared by every dashboard process and replica and
-- surviving restarts: one row per client (its address) and one per account.
--
-- login_throttle_take() checks and counts in one statement (one call, rows locked in a fixed
-- order), so concurrent submits queue on the rows instead of all reading "no failures yet":
-- each granted attempt is counted as a failure up front and login_throttle_succeeded()
-- clears it. A client's own failures slow it down hard (doubling waits); the account's
-- failures from everywhere only space attempts out (one per few seconds), so an attacker
-- elsewhere cannot lock the right password out.
CREATE TABLE IF NOT EXISTS login_throttle (
    key             text PRIMARY KEY,          -- 'client:<address>' or 'account:<name>'
    failures        integer NOT NULL DEFAULT 0,
    last_failure_at timestamptz,
    next_attempt_at timestamptz               -- NULL: may try now
);
ALTER TABLE login_throttle ENABLE ROW LEVEL SECURITY;

-- ---- 0101_ledger_row_security --------------------------------------------------------------
-- Row-level security on the migration ledger too, like every other table the project
-- creates (Supabase's REST API would otherwise list it). The ledger is created by
-- `python -m jobs migrate` itself before any migration runs, so it exists here.
ALTER TABLE schema_migrations ENABLE ROW LEVEL SECURITY;

-- ---- 0110_event_rollups --------------------------------------------------------------------
-- (its functions and triggers: migrations/functions/event_rollups.sql)
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

-- ---- 0111_event_search ---------------------------------------------------------------------
-- (its functions and triggers: migrations/functions/search.sql)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        RAISE NOTICE 'pg_trgm is not available on this server: the event search reads the window''s rows';
        RETURN;
    END IF;
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN insufficient_privilege OR feature_not_supported OR undefined_file THEN
        RAISE NOTICE 'pg_trgm could not be created (%): the event search reads the window''s rows', SQLERRM;
        RETURN;
    END;
    -- The operator class lives in the extension's schema, whichever that is.
    EXECUTE format('CREATE INDEX IF NOT EXISTS webhook_events_search_id_idx ON public.webhook_events '
                   'USING gin (stripe_event_id %I.gin_trgm_ops)',
                   (SELECT n.nspname FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
                    WHERE x.extname = 'pg_trgm'));
    EXECUTE format('CREATE INDEX IF NOT EXISTS webhook_events_search_error_idx ON public.webhook_events '
                   'USING gin (error_message %I.gin_trgm_ops) WHERE error_message IS NOT NULL',
                   (SELECT n.nspname FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
                    WHERE x.extname = 'pg_trgm'));
END
$$;

-- ---- 0112_error_group_indexes --------------------------------------------------------------
-- The Errors page's error groups at a cost flat in the size of the history (issue 14).
--
-- * webhook_event_attempts.error_fingerprint: the group key of a failed attempt,
--   public.error_fingerprint (migrations/0061) of its message ('unspecified error' when it has
--   none or only whitespace; the same key the queries derive from webhook_events.error_fingerprint), computed once when the attempt's outcome is written (a stored generated column)
--   instead of by regex over every failed attempt of the window at read time. Null for
--   attempts that did not fail.
-- * An index on the failed attempts by fingerprint and end, so one group's attempts
--   (error_group_failing_events) are an index range, not a scan of the window.
-- * An index on the failed events by the time they failed (processed_at, else created_at),
--   the instant both error queries read them by: failed events of older windows are no
--   longer read and discarded.
-- The column is added with a table rewrite: on a large attempts table, run this migration
-- in a quiet hour.

ALTER TABLE webhook_event_attempts ADD COLUMN IF NOT EXISTS error_fingerprint text
    GENERATED ALWAYS AS (CASE WHEN outcome = 'failed' THEN
        coalesce(nullif(public.error_fingerprint(error_message), ''), 'unspecified error') END) STORED;
CREATE INDEX IF NOT EXISTS webhook_event_attempts_failed_fingerprint_idx
    ON webhook_event_attempts (error_fingerprint, finished_at) INCLUDE (stripe_event_id)
    WHERE outcome = 'failed';
CREATE INDEX IF NOT EXISTS webhook_events_failed_at_idx
    ON webhook_events ((coalesce(processed_at, created_at)))
    WHERE processing_status = 'failed';

-- ---- 0113_funnel_paid_lookup ---------------------------------------------------------------
-- The Funnel page's "paid" step (queries/funnel.sql funnel_by_bucket): whether a paid
-- Checkout Session event was recorded for a registration's session is one index probe by the
-- session id, instead of a scan of the window's checkout events per registration or a hash
-- of all of them. Partial: only the two event types that step looks for are indexed, so the
-- receiver maintains it for a small share of its inserts.
CREATE INDEX IF NOT EXISTS webhook_events_checkout_paid_session_idx
    ON webhook_events ((payload -> 'data' -> 'object' ->> 'id'), created_at)
    WHERE event_type IN ('checkout.session.completed', 'checkout.session.async_payment_succeeded');

-- ---- 0120_attempt_liveness -----------------------------------------------------------------
-- (its functions and triggers: migrations/functions/tracking.sql)
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

-- ---- 0130_error_rollups --------------------------------------------------------------------
-- (its functions and triggers: migrations/functions/error_rollups.sql)
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

-- ---- 0131_event_search_words ---------------------------------------------------------------
-- (its functions and triggers: migrations/functions/search.sql)
CREATE INDEX IF NOT EXISTS webhook_events_search_id_prefix_idx
    ON webhook_events (lower(stripe_event_id) text_pattern_ops);
CREATE INDEX IF NOT EXISTS webhook_events_search_words_idx
    ON webhook_events USING gin (to_tsvector('simple'::regconfig, error_message))
    WHERE error_message IS NOT NULL;

-- ---- 0135_registration_rollups -------------------------------------------------------------
-- (its functions and triggers: migrations/functions/registration_rollups.sql)
-- Registration rollups: the Funnel page's and the report's registration aggregates at a cost
-- flat in the size of the history, the way migrations/0110_event_rollups.sql does it for
-- the events.
--
-- * registration_funnel_rollup: per UTC hour of created_at × whether checkout started (a
--   session id) × completed (processing_status 'completed') × paid (the Funnel's "paid"
--   step: checkout started, and completed or a paid Checkout Session event recorded for the
--   session), how many registrations.
-- * registration_completion_rollup: per hour of created_at, a histogram of the completed
--   registrations' time from creation to completion over fixed bins
--   (registration_completion_bin, below); registration_completion_daily the same per UTC
--   day, so a 30-day window reads 30 days of bins (and the hours of its partial first and
--   last day) instead of 720 hours of them: up to ~250 bins per bucket are filled at busy
--   hours.
-- * registration_payment_rollup: per UTC hour of completed_at × lower(currency) ('' when
--   none), how many completed registrations, how many of them have an amount, and the sum
--   of their amounts (minor units).
-- * checkout_paid_sessions: per Checkout Session id, how many paid Checkout Session events
--   webhook_events holds for it (only sessions with at least one), maintained by row
--   triggers on webhook_events for the two paid event types. A session going from none to
--   one (or back) flips the "paid" key of its registration, if that one is not completed
--   (a completed registration is paid anyway); a counter, not "is there another row", so
--   several events of one session in one statement count right.
-- * All three rollups are kept exact by those triggers and a row trigger on registrations
--   (every INSERT, UPDATE and DELETE appends -1 for the old row's key and +1 for the new
--   row's to registration_rollup_delta: pending -> completed, expired, failed, cleanup's
--   archive move, a session id set later, all land right). The changes are folded into the
--   rollups now and then; readers add what is pending. TRUNCATE of registrations empties the
--   rollups; TRUNCATE of webhook_events recomputes them (no event, no paid session).
-- * registration_funnel_counts, registration_completion_window, registration_payment_window
--   (start, end): the rollup rows (and pending changes) of the whole hours inside
--   [start, end) plus the raw rows of its partial edge hours, grouped alike.
--
-- registrations is the application's table (migrations/reference/0001_registrations.sql is
-- its reference shape): this migration adds the two triggers and one partial index
-- (completed_at of completed rows, for the payments' edge hours) to it, nothing else.
-- "Paid" means a paid event for the session exists in webhook_events, whenever it was
-- recorded (the query this replaces looked only at events since the window's start; a
-- session's events come after its registration, so the numbers are the same).
-- Concurrency: the events' trigger locks the registration it moves, so a registration
-- completed (or expired) while the first paid event of its session is being recorded lands
-- right whichever commits first. One race is not covered: a registration whose session id
-- is written in a transaction running at the same time as the first paid event of that
-- session (before either commits) keeps "not paid" until registration_rollup_rebuild();
-- Stripe sends that event only after the customer paid on the page the session was created
-- for, and the app writes the session id when it creates the session, long before.

CREATE INDEX IF NOT EXISTS registrations_completed_at_idx
    ON registrations (completed_at) WHERE processing_status = 'completed';
CREATE TABLE IF NOT EXISTS checkout_paid_sessions (
    session_id text PRIMARY KEY,                      -- checkout_paid_session(event_type, payload)
    events     integer NOT NULL                       -- paid events recorded for it, > 0
);
ALTER TABLE checkout_paid_sessions ENABLE ROW LEVEL SECURITY;
CREATE TABLE IF NOT EXISTS registration_funnel_rollup (
    bucket        timestamptz NOT NULL,               -- date_trunc('hour', created_at, 'UTC')
    has_session   boolean NOT NULL,                   -- checkout started
    completed     boolean NOT NULL,                   -- processing_status = 'completed'
    paid          boolean NOT NULL,                   -- the Funnel's "paid" step
    registrations bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, has_session, completed, paid)
);
CREATE TABLE IF NOT EXISTS registration_completion_rollup (
    bucket        timestamptz NOT NULL,               -- hour of created_at
    bin           smallint NOT NULL,
    registrations bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, bin)
);
CREATE TABLE IF NOT EXISTS registration_completion_daily (
    bucket        timestamptz NOT NULL,               -- date_trunc('day', created_at, 'UTC')
    bin           smallint NOT NULL,
    registrations bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, bin)
);
CREATE TABLE IF NOT EXISTS registration_payment_rollup (
    bucket        timestamptz NOT NULL,               -- date_trunc('hour', completed_at, 'UTC')
    currency      text NOT NULL,                      -- lower(currency), '' when none
    registrations bigint NOT NULL DEFAULT 0,
    amounts       bigint NOT NULL DEFAULT 0,          -- how many have an amount_total
    amount_total  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, currency)
);
-- Changes not yet folded: one row per registration row that entered (+1) or left (-1) a
-- rollup key. completed_bucket (and completion_bin) only for completed rows with a
-- completed_at, the ones the completion and payment rollups count.
CREATE TABLE IF NOT EXISTS registration_rollup_delta (
    sign             smallint NOT NULL,
    bucket           timestamptz NOT NULL,
    has_session      boolean NOT NULL,
    completed        boolean NOT NULL,
    paid             boolean NOT NULL,
    completion_bin   smallint,
    completed_bucket timestamptz,
    currency         text NOT NULL,
    amount_total     bigint
);
CREATE INDEX IF NOT EXISTS registration_rollup_delta_bucket_idx ON registration_rollup_delta (bucket);
CREATE INDEX IF NOT EXISTS registration_rollup_delta_completed_idx
    ON registration_rollup_delta (completed_bucket) WHERE completed_bucket IS NOT NULL;
ALTER TABLE registration_funnel_rollup ENABLE ROW LEVEL SECURITY;
ALTER TABLE registration_completion_rollup ENABLE ROW LEVEL SECURITY;
ALTER TABLE registration_completion_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE registration_payment_rollup ENABLE ROW LEVEL SECURITY;
ALTER TABLE registration_rollup_delta ENABLE ROW LEVEL SECURITY;

-- ---- 0140_job_run_liveness -----------------------------------------------------------------
-- A job killed mid-run (SIGKILL, OOM, a machine lost) no longer leaves its job_runs row
-- 'running' for ever.
--
-- Each run now holds a session-level advisory lock keyed by its row's id, on a connection it
-- keeps for the whole run (jobs/runtime.py). PostgreSQL frees the lock the moment that
-- session ends, which it does when the process dies. The next run of any job closes every
-- 'running' row whose lock is free (recorded 'failed' with the reason 'abandoned: ...'), but
-- only a row whose lock was taken on this very server start (server_started_at equal to
-- pg_postmaster_start_time()): after a database restart every lock is gone, also those of
-- runs still alive (a `watch` riding the restart out), so an older row is closed only when
-- its host is the closing process's host and its pid is no longer alive there.

ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS server_started_at timestamptz;
COMMENT ON COLUMN job_runs.server_started_at IS
    'pg_postmaster_start_time() when the run took its liveness lock: a free lock proves the run '
    'ended only on the same server start.';
-- The next run looks for 'running' rows on every start: few rows, found by this index.
CREATE INDEX IF NOT EXISTS job_runs_running_idx ON job_runs (id) WHERE status = 'running';

-- ---- 0150_paid_unfinished_registrations ----------------------------------------------------
-- (its functions and triggers: migrations/functions/paid_unfinished.sql)
-- "Who is affected" at any size: the registrations that are not completed although their
-- Checkout Session was paid, kept as a set instead of found at read time.
--
-- queries/affected.sql affected_registrations used to read every paid Checkout Session event
-- of the last 30 days and sort them by session (3 million at 10 million events: minutes).
-- The people it lists are the exception (a payment the app did not apply), so the set is
-- small and is kept here: registrations_paid_unfinished holds each registration whose
-- processing_status is not 'completed' and whose stripe_checkout_session_id has a paid
-- Checkout Session event recorded (checkout_paid_sessions, migrations/0135).
--
-- Statement triggers with transition tables keep it, on registrations (a registration
-- inserted, completed, failed, given a session, archived) and on checkout_paid_sessions (a
-- session's first paid event recorded, its last one archived): one set-based statement per
-- statement, so a bulk load or a rebuild of checkout_paid_sessions costs one join, and a
-- delivery one index probe. The set is a list of candidates: the query checks each one's
-- status and paid event again when it reads them, so a row a race left behind is never
-- shown; and reconciliation, which asks Stripe, still finds any payment not applied.

CREATE TABLE IF NOT EXISTS registrations_paid_unfinished (
    registration_id uuid PRIMARY KEY,
    session_id      text NOT NULL
);
CREATE INDEX IF NOT EXISTS registrations_paid_unfinished_session_idx
    ON registrations_paid_unfinished (session_id);
ALTER TABLE registrations_paid_unfinished ENABLE ROW LEVEL SECURITY;

-- ---- 0151_paid_unfinished_order ------------------------------------------------------------
-- (its functions and triggers: migrations/functions/paid_unfinished.sql)
-- "Who is affected" lists the oldest registrations first and says how many there are in all.
-- With 113,642 of them (the 10M demo history), joining each to its registration to sort and
-- checking each one's paid event took 3 s; the set now carries the registration's created_at
-- with an index in the list's order, so a page is an index range and the total a count of
-- the set. Since the count is no longer re-checked row by row, the triggers make the set
-- exact: a session's first paid event locks the registrations of that session before it
-- reads them, so a registration being completed or given that session at the same moment is
-- read as that transaction leaves it (a statement in a trigger function sees what committed
-- before it started). One case stays open: a registration inserted with the session at the
-- very moment of its first paid event (the app inserts it before the checkout, minutes
-- earlier); reconciliation, which asks Stripe, still finds it.

ALTER TABLE registrations_paid_unfinished ADD COLUMN IF NOT EXISTS registration_created_at timestamptz;
ALTER TABLE registrations_paid_unfinished ALTER COLUMN registration_created_at SET NOT NULL;
CREATE INDEX IF NOT EXISTS registrations_paid_unfinished_order_idx
    ON registrations_paid_unfinished (registration_created_at, registration_id);

-- ---- 0152_failed_event_indexes -------------------------------------------------------------
-- The failed events by category, now (failure_plan on the Errors page) and in a window
-- (failed_events_by_category in the health report and on the Health page), read from two
-- small partial indexes that carry every column those counts need, instead of the rows:
-- failures are a few percent of the events, and an index-only scan of them reads about a
-- hundredth of the pages (at 10M events, 300,000 failed: 389 and 335 ms before).
CREATE INDEX IF NOT EXISTS webhook_events_failed_category_idx
    ON webhook_events (error_category, next_retry_at) WHERE processing_status = 'failed';
CREATE INDEX IF NOT EXISTS webhook_events_failed_created_idx
    ON webhook_events (created_at) INCLUDE (error_category, next_retry_at)
    WHERE processing_status = 'failed';

-- ---- 0160_event_rollups_daily --------------------------------------------------------------
-- (its functions and triggers: migrations/functions/event_rollups.sql)
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

-- ---- 0165_failed_checkout_index ------------------------------------------------------------
-- The payment_event_failed alert rule (jobs/alerting/rules.sql), which the status verdict
-- in every dashboard page's sidebar and `python -m jobs watch` run again and again, read
-- every failed checkout event of its lookback from the table (25,000 rows at 10M events,
-- the demo's outage: 110-145 ms) to count them and pick five examples. This
-- small partial index holds only failed checkout.session.* events, keyed by type then time
-- and carrying the columns the counts need, so the counts are an index-only range scan per
-- type and the five newest examples (and the latest error) five index probes per type.
-- Its predicate repeats the query's conditions word for word, which is how the planner
-- matches a partial index. Writes: only failed checkout events enter it, and every update
-- of webhook_events that sets updated_at, processed_at or next_retry_at also changes
-- processing_status, already indexed, so no update that was HOT stops being HOT.
-- Cost: migrations run in a transaction, so this is a plain CREATE INDEX (no CONCURRENTLY):
-- one pass over webhook_events holding a lock that blocks writes to it meanwhile, 8-10 s at
-- 10M events (143,000 failed checkout events) on a 2-core machine. To avoid the pause on a
-- large live table, create it by hand with CREATE INDEX CONCURRENTLY under the same name
-- first; this statement then does nothing.
CREATE INDEX IF NOT EXISTS webhook_events_failed_checkout_idx
    ON webhook_events (event_type, created_at) INCLUDE (next_retry_at, processed_at, updated_at)
    WHERE processing_status = 'failed' AND event_type LIKE 'checkout.session.%';

-- ---- 0170_event_search_recent_messages -----------------------------------------------------
-- The events explorer's page of a free-text search at 10M events (issue 14): the rows that
-- carry an error message, by arrival time. queries/events.sql's events_page walks the
-- window's newest messages on it (newest first, at most 2,000) before falling back to every
-- candidate of the word index (0131): a frequent word ("deadlock", 20,000-100,000 events a
-- month in the demo data) fills a page from the newest few hundred messages instead of
-- reading and sorting every match.
--
-- The predicate is error_fingerprint IS NOT NULL (the generated column of 0110, set exactly
-- when error_message is not empty), which only events_page states: the search's count
-- (events_count) does not, so the planner keeps counting from the word index there rather
-- than walking every message of the window.
--
-- Cost: one read of webhook_events; on the 10M-event demo database (296,000 messages,
-- 13 GB of rows) it took 12 s inside a transaction and is a few MB.
CREATE INDEX IF NOT EXISTS webhook_events_message_created_idx
    ON webhook_events (created_at)
    WHERE error_fingerprint IS NOT NULL;
