-- The events explorer's free-text search at millions of rows on any server, with or without
-- pg_trgm (issue 14; migrations/0111 made trigram indexes where the server has them, and
-- without them the search read every row of the window).
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

CREATE INDEX IF NOT EXISTS webhook_events_search_id_prefix_idx
    ON webhook_events (lower(stripe_event_id) text_pattern_ops);
CREATE INDEX IF NOT EXISTS webhook_events_search_words_idx
    ON webhook_events USING gin (to_tsvector('simple'::regconfig, error_message))
    WHERE error_message IS NOT NULL;
