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
