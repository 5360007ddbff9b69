-- The monitor in the operator's own tools: its processes' heartbeats (who watches the
-- watcher), Stripe's own view of the webhook endpoints, the PagerDuty channel and its
-- acknowledgements, and the endpoint rules.

-- One row per long-running process kind ('watch', 'schedule'): when it last showed it is
-- alive. `watch` writes it in every evaluation's transaction, `schedule` every minute.
-- The verdict reads it: no row, or an old one, means nobody evaluates the alert rules (or
-- runs the retries and sweeps), which is itself a reason to look.
CREATE TABLE IF NOT EXISTS monitor_heartbeats (
    process     text PRIMARY KEY
        CONSTRAINT monitor_heartbeats_process_check CHECK (process IN ('watch', 'schedule')),
    beat_at     timestamptz NOT NULL,
    host        text,
    -- The first beat of this run of the process, and what it reports about itself.
    started_at  timestamptz,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
ALTER TABLE monitor_heartbeats ENABLE ROW LEVEL SECURITY;

-- Stripe's webhook endpoints as GET /v1/webhook_endpoints last listed them (the endpoint
-- check of `python -m jobs sweep`): one row per endpoint, replaced on every check, so the
-- rules and the Health page read what Stripe says now.
CREATE TABLE IF NOT EXISTS stripe_webhook_endpoints (
    stripe_endpoint_id text PRIMARY KEY,
    url                text NOT NULL,
    -- 'enabled' or 'disabled' (Stripe disables an endpoint that keeps failing, and says
    -- so only by e-mail to the account owner).
    status             text NOT NULL,
    -- NULL: the account's default API version at the endpoint's creation.
    api_version        text,
    enabled_events     text[] NOT NULL DEFAULT '{}',
    livemode           boolean NOT NULL DEFAULT false,
    description        text,
    stripe_created_at  timestamptz,
    -- Whether this endpoint is the app's (MONITOR_STRIPE_ENDPOINT_URL, or every endpoint
    -- when that is unset), the event types it misses and whether its version differs.
    watched            boolean NOT NULL DEFAULT true,
    missing_events     text[] NOT NULL DEFAULT '{}',
    expected_api_version text,
    api_version_mismatch boolean NOT NULL DEFAULT false,
    first_seen_at      timestamptz NOT NULL,
    seen_at            timestamptz NOT NULL,
    -- When it was last seen enabled, and since when it has been disabled.
    disabled_since     timestamptz
);
ALTER TABLE stripe_webhook_endpoints ENABLE ROW LEVEL SECURITY;

-- The endpoint rules join the others.
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_rule_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_rule_check
    CHECK (rule IN ('payment_event_failed', 'failure_rate', 'silence', 'stuck_events',
                    'missed_events', 'review_needed', 'job_failed',
                    'endpoint_disabled', 'endpoint_misconfigured'));

-- PagerDuty is a channel; an alert acknowledged on the dashboard is acknowledged there too
-- (kind 'acknowledged', queued only for channels that have such a state).
ALTER TABLE alert_notifications DROP CONSTRAINT IF EXISTS alert_notifications_channel_check;
ALTER TABLE alert_notifications ADD CONSTRAINT alert_notifications_channel_check
    CHECK (channel IN ('webhook', 'slack', 'email', 'pagerduty'));
ALTER TABLE alert_notifications DROP CONSTRAINT IF EXISTS alert_notifications_kind_check;
ALTER TABLE alert_notifications ADD CONSTRAINT alert_notifications_kind_check
    CHECK (kind IN ('firing', 'resolved', 'reminder', 'acknowledged'));

-- cleanup prunes finished job runs, sent notifications and sweep runs by age.
CREATE INDEX IF NOT EXISTS job_runs_started_idx ON job_runs (started_at);
CREATE INDEX IF NOT EXISTS alert_notifications_created_idx ON alert_notifications (created_at);
