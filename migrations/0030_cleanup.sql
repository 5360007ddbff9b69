-- Cleanup runs and the archive of removed stale registrations.
CREATE TABLE IF NOT EXISTS cleanup_runs (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status                  text NOT NULL DEFAULT 'running'
        CONSTRAINT cleanup_runs_status_check CHECK (status IN ('running', 'completed', 'failed')),
    trigger                 text NOT NULL DEFAULT 'cli'
        CONSTRAINT cleanup_runs_trigger_check CHECK (trigger IN ('cli', 'dashboard', 'schedule', 'test')),
    dry_run                 boolean NOT NULL DEFAULT false,
    pending_days            integer NOT NULL,
    events_days             integer NOT NULL,
    started_at              timestamptz NOT NULL,
    finished_at             timestamptz,
    duration_ms             integer,
    stale_pending_found     integer NOT NULL DEFAULT 0,
    registrations_archived  integer NOT NULL DEFAULT 0,
    registrations_kept_paid integer NOT NULL DEFAULT 0,
    events_matched          integer NOT NULL DEFAULT 0,
    events_archived         integer NOT NULL DEFAULT 0,
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
    archive_reason             text NOT NULL,
    stripe_session_status      text,
    stripe_payment_status      text,
    cleanup_run_id             bigint REFERENCES cleanup_runs (id),
    row_data                   jsonb NOT NULL
);

ALTER TABLE cleanup_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE registrations_archive ENABLE ROW LEVEL SECURITY;
