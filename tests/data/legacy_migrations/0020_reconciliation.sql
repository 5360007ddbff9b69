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
