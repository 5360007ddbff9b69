-- The events explorer's free-text search helpers (queries/events.sql). A function file (see
-- tracking.sql); the indexes they are served by are in the numbered migrations.

-- webhook_search_pattern(text): an ILIKE pattern matching the text anywhere, every character
-- literally ('%', '_' and '\' escaped). With pg_trgm, GIN trigram indexes on the event id and
-- the error message serve "ILIKE '%...%'" without reading the window's rows. pg_trgm ships
-- with PostgreSQL's contrib (Supabase, RDS, Cloud SQL, Debian's postgresql package); where
-- the server lacks it (the embedded server), the search reads the window's rows (the baseline
-- skips those indexes there).

CREATE OR REPLACE FUNCTION public.webhook_search_pattern(p_search text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT '%' || replace(replace(replace(p_search, '\', '\\'), '%', '\%'), '_', '\_') || '%'
$$;

-- The events explorer's free-text search at millions of rows on any server, with or without
-- pg_trgm:
--
-- * Event ids: an id matches when it begins with the search, with or without its 'evt_',
--   in any case (a pasted id, or its first characters): ranges of a b-tree on
--   lower(stripe_event_id) (queries/events.sql).
-- * Error messages: read as words with PostgreSQL's built-in text search (configuration
--   'simple': no extension, no language rules, only lower-casing). A message matches when
--   every word of the search begins one of its words and it contains the search as typed
--   (the ILIKE of queries/events.sql stays the final check, so every row shown contains
--   the text). A GIN index on the messages' words finds them without reading the window.
-- * A search with no word at all (only punctuation or symbols, e.g. '%' or '_', or a word
--   longer than text search takes, 2,047 bytes) is matched anywhere in ids and messages by
--   reading the window's rows, as before.
--
-- webhook_search_words(text): the search's words as a prefix query ('mailer:* & tim:*'),
-- or null when it has none. webhook_search_prefix(text): the LIKE pattern of ids beginning
-- with the search (lower-cased; '%', '_' and '\' escaped).

CREATE OR REPLACE FUNCTION public.webhook_search_words(p_search text)
RETURNS tsquery
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT CASE WHEN count(*) > 0 THEN
           to_tsquery('simple'::regconfig,
                      string_agg('''' || replace(replace(word, '\', '\\'), '''', '''''') || ''':*', ' & '))
       END
FROM unnest(tsvector_to_array(to_tsvector('simple'::regconfig, coalesce(p_search, '')))) AS word
$$;

CREATE OR REPLACE FUNCTION public.webhook_search_prefix(p_search text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT replace(replace(replace(lower(p_search), '\', '\\'), '%', '\%'), '_', '\_') || '%'
$$;

-- Callable by their owner only (_privileges.sql says why).
SELECT public.webhook_monitor_callable_by(ARRAY[
        'public.webhook_search_pattern(text)',
        'public.webhook_search_words(text)',
        'public.webhook_search_prefix(text)'
]::regprocedure[]);
