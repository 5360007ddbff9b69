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
