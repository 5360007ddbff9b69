-- The events explorer's free-text search (queries/events.sql) at millions of rows.
--
-- webhook_search_pattern(text): an ILIKE pattern matching the text anywhere, every character
-- literally ('%', '_' and '\' escaped). With pg_trgm, GIN trigram indexes on the event id and
-- the error message serve "ILIKE '%...%'" without reading the window's rows. pg_trgm ships
-- with PostgreSQL's contrib (Supabase, RDS, Cloud SQL, Debian's postgresql package); where
-- the server lacks it (the embedded server), the search reads the window's rows as before:
-- the DO block below skips the indexes and says so, it never fails the migration.

CREATE OR REPLACE FUNCTION public.webhook_search_pattern(p_search text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT '%' || replace(replace(replace(p_search, '\', '\\'), '%', '\%'), '_', '\_') || '%'
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        RAISE NOTICE 'pg_trgm is not available on this server: the event search reads the window''s rows';
        RETURN;
    END IF;
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN insufficient_privilege OR feature_not_supported OR undefined_file THEN
        RAISE NOTICE 'pg_trgm could not be created (%): the event search reads the window''s rows', SQLERRM;
        RETURN;
    END;
    -- The operator class lives in the extension's schema, whichever that is.
    EXECUTE format('CREATE INDEX IF NOT EXISTS webhook_events_search_id_idx ON public.webhook_events '
                   'USING gin (stripe_event_id %I.gin_trgm_ops)',
                   (SELECT n.nspname FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
                    WHERE x.extname = 'pg_trgm'));
    EXECUTE format('CREATE INDEX IF NOT EXISTS webhook_events_search_error_idx ON public.webhook_events '
                   'USING gin (error_message %I.gin_trgm_ops) WHERE error_message IS NOT NULL',
                   (SELECT n.nspname FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
                    WHERE x.extname = 'pg_trgm'));
END
$$;
