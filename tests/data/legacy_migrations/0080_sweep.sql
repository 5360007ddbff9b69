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
