-- name: empty_project_tables
-- Leaves the public schema's tables (all but schema_migrations) as
-- "TRUNCATE <every table> RESTART IDENTITY CASCADE" would, but truncates only the tables that
-- hold a row or whose own sequence was used since it was last reset: a TRUNCATE does file
-- work for each table and index, and a test touches two or three tables at most.
DO $$
DECLARE
    tab record;
    has_row boolean;
    dirty text[] := '{}';
BEGIN
    FOR tab IN
        SELECT c.oid, c.relname
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM public.%I)', tab.relname) INTO has_row;
        IF has_row OR EXISTS (
            SELECT 1
            FROM pg_depend d
            JOIN pg_class s ON s.oid = d.objid
            WHERE d.classid = 'pg_class'::regclass AND d.refobjid = tab.oid AND d.deptype IN ('a', 'i')
              -- CASE: the function must see sequences only, whatever order the planner picks
              AND CASE WHEN s.relkind = 'S' THEN pg_sequence_last_value(s.oid) IS NOT NULL ELSE false END
        ) THEN
            dirty := dirty || format('public.%I', tab.relname);
        END IF;
    END LOOP;
    IF cardinality(dirty) > 0 THEN
        EXECUTE 'TRUNCATE ' || array_to_string(dirty, ', ') || ' RESTART IDENTITY CASCADE';
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
