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
