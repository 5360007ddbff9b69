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
