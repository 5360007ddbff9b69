-- name: empty_project_tables
-- Every table of the public schema but schema_migrations emptied, sequences restarted, in one
-- statement. Every table, not only those a row-existence check calls dirty: a suite run in
-- two processes found rollup rows and an attempt sequence left from an earlier test that
-- such a check had passed over (the cause not found), and the error rollup tests then
-- compared against another test's history.
DO $$
DECLARE
    tables text;
BEGIN
    SELECT string_agg(format('public.%I', c.relname), ', ')
      INTO tables
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations';
    IF tables IS NOT NULL THEN
        EXECUTE 'TRUNCATE ' || tables || ' RESTART IDENTITY CASCADE';
    END IF;
END
$$

-- name: throwaway_server_settings
-- The embedded server of a throwaway database trades durability for speed: nothing in it
-- has to survive a crash (written to its own postgresql.auto.conf; takes effect on reload).
ALTER SYSTEM SET fsync = off

-- name: throwaway_server_commit
-- See throwaway_server_settings.
ALTER SYSTEM SET synchronous_commit = off

-- name: throwaway_server_full_pages
-- See throwaway_server_settings.
ALTER SYSTEM SET full_page_writes = off

-- name: reload_server_settings
-- Applies what ALTER SYSTEM wrote.
SELECT pg_reload_conf()

-- name: project_tables
-- The project's tables (public schema, all but schema_migrations), by name.
SELECT tablename FROM pg_tables
WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
ORDER BY tablename

-- name: events_held
-- How many webhook events a database holds (the size a benchmark reports its figures under).
SELECT count(*) FROM webhook_events
