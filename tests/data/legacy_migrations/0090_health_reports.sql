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
