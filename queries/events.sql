-- Events explorer: filtered, paginated event lists and one event's detail.
--
-- Filters shared by events_page and events_count, all bound parameters:
--   :statuses    text[] of processing statuses; an empty array means any status
--   :event_types text[] of Stripe event types; an empty array means any type
--   :search      null for no search, else text to find, case-insensitive
--                (migrations/functions/search.sql): an event id beginning with it,
--                with or without its 'evt_' (b-tree ranges), or an error message
--                containing it whose words begin
--                with its words (a GIN index on the messages' words); a search without
--                any word (only symbols, e.g. '%') is found anywhere in the id or the
--                message by reading the window. webhook_search_pattern() escapes '%', '_'
--                and '\' so every character of the search text matches itself. The
--                search's functions are immutable, so each call is planned for its text:
--                only the branch for that kind of search remains.

-- name: events_page
-- One page of the events received in [start, end) that pass the filters, newest first: at
-- most :limit rows after skipping :offset. With a search that has words, the messages are
-- first looked for among the window's newest 2,000 messages that pass the filters (walked
-- newest first on webhook_events_message_created_idx, the index of the rows with a message,
-- in migrations/0179_baseline.sql): when that walk holds enough matches for the page (or
-- every message of the window), the page comes from it; otherwise from every candidate of
-- the word index, sorted (a cost that follows the matches in the window). Either way the
-- rows are the same: the walk is in the page's own order, so its first matches are the
-- first matches of all. Ids by their beginning and searches without a word are separate
-- branches, each cut at :limit + :offset, and the page is taken from their union.
WITH recent AS MATERIALIZED (
    SELECT stripe_event_id, event_type, processing_status, attempts, created_at, processed_at,
           processing_duration_ms, error_message, livemode, id
    FROM webhook_events
    WHERE webhook_search_words(:search) IS NOT NULL
      AND created_at >= :start AND created_at < :end
      -- error_fingerprint is set exactly when error_message is not empty (its generated
      -- column, migrations/0179_baseline.sql): this is the predicate of the index walked
      -- (webhook_events_message_created_idx)
      AND error_fingerprint IS NOT NULL
      AND (cardinality(CAST(:statuses AS text[])) = 0
           OR processing_status = ANY (CAST(:statuses AS text[])))
      AND (cardinality(CAST(:event_types AS text[])) = 0
           OR event_type = ANY (CAST(:event_types AS text[])))
    ORDER BY created_at DESC, id DESC
    LIMIT 2000
), recent_hits AS MATERIALIZED (
    SELECT stripe_event_id, event_type, processing_status, attempts, created_at, processed_at,
           processing_duration_ms, error_message, livemode, id
    FROM recent
    WHERE error_message ILIKE webhook_search_pattern(:search)
      AND to_tsvector('simple'::regconfig, error_message) @@ webhook_search_words(:search)
    ORDER BY created_at DESC, id DESC
    LIMIT CAST(:limit AS bigint) + CAST(:offset AS bigint)
), walk_enough AS (
    SELECT (SELECT count(*) FROM recent_hits) >= CAST(:limit AS bigint) + CAST(:offset AS bigint)
           OR (SELECT count(*) FROM recent) < 2000 AS enough
), word_candidates AS MATERIALIZED (
    -- only read when the walk was not enough (a one-time filter below)
    SELECT stripe_event_id, event_type, processing_status, attempts, created_at, processed_at,
           processing_duration_ms, error_message, livemode, id
    FROM webhook_events
    WHERE webhook_search_words(:search) IS NOT NULL AND error_message IS NOT NULL
      AND to_tsvector('simple'::regconfig, error_message) @@ webhook_search_words(:search)
      AND error_message ILIKE webhook_search_pattern(:search)
      AND created_at >= :start AND created_at < :end
      AND (cardinality(CAST(:statuses AS text[])) = 0
           OR processing_status = ANY (CAST(:statuses AS text[])))
      AND (cardinality(CAST(:event_types AS text[])) = 0
           OR event_type = ANY (CAST(:event_types AS text[])))
), found AS (
    (SELECT * FROM recent_hits
     WHERE (SELECT enough FROM walk_enough))
    UNION
    (SELECT * FROM word_candidates
     WHERE NOT (SELECT enough FROM walk_enough)
     ORDER BY created_at DESC, id DESC
     LIMIT CAST(:limit AS bigint) + CAST(:offset AS bigint))
    UNION
    (SELECT stripe_event_id, event_type, processing_status, attempts, created_at, processed_at,
            processing_duration_ms, error_message, livemode, id
     FROM webhook_events
     WHERE webhook_search_words(:search) IS NOT NULL
       AND created_at >= :start AND created_at < :end
       AND (lower(stripe_event_id) LIKE webhook_search_prefix(:search)
            OR lower(stripe_event_id) LIKE 'evt\_' || webhook_search_prefix(:search))
       AND (cardinality(CAST(:statuses AS text[])) = 0
            OR processing_status = ANY (CAST(:statuses AS text[])))
       AND (cardinality(CAST(:event_types AS text[])) = 0
            OR event_type = ANY (CAST(:event_types AS text[])))
     ORDER BY created_at DESC, id DESC
     LIMIT CAST(:limit AS bigint) + CAST(:offset AS bigint))
    UNION
    (SELECT stripe_event_id, event_type, processing_status, attempts, created_at, processed_at,
            processing_duration_ms, error_message, livemode, id
     FROM webhook_events
     WHERE CAST(:search AS text) IS NOT NULL AND webhook_search_words(:search) IS NULL
       AND created_at >= :start AND created_at < :end
       AND (stripe_event_id ILIKE webhook_search_pattern(:search)
            OR error_message ILIKE webhook_search_pattern(:search))
       AND (cardinality(CAST(:statuses AS text[])) = 0
            OR processing_status = ANY (CAST(:statuses AS text[])))
       AND (cardinality(CAST(:event_types AS text[])) = 0
            OR event_type = ANY (CAST(:event_types AS text[])))
     ORDER BY created_at DESC, id DESC
     LIMIT CAST(:limit AS bigint) + CAST(:offset AS bigint))
)
SELECT stripe_event_id, event_type, processing_status, attempts, created_at, processed_at,
       processing_duration_ms, error_message, livemode
FROM (
    (SELECT stripe_event_id, event_type, processing_status, attempts, created_at, processed_at,
            processing_duration_ms, error_message, livemode, id
     FROM webhook_events
     WHERE CAST(:search AS text) IS NULL
       AND created_at >= :start AND created_at < :end
       AND (cardinality(CAST(:statuses AS text[])) = 0
            OR processing_status = ANY (CAST(:statuses AS text[])))
       AND (cardinality(CAST(:event_types AS text[])) = 0
            OR event_type = ANY (CAST(:event_types AS text[])))
     ORDER BY created_at DESC, id DESC
     LIMIT CAST(:limit AS bigint) + CAST(:offset AS bigint))
    UNION ALL
    SELECT * FROM found WHERE CAST(:search AS text) IS NOT NULL
) page
ORDER BY created_at DESC, id DESC
LIMIT :limit OFFSET :offset

-- name: events_count
-- How many events received in [start, end) pass the filters (for the page count). Without a
-- search the count comes from the hourly rollups plus the window's edge hours (status and
-- type are rollup keys); with one, from the matching rows, counted up to 1,001 (the page
-- says "more than 1,000": a word found in most messages would otherwise count them all, and
-- each match is a row read to check its time and text: 10,001 of them took 190 ms at 10M
-- events, 1,001 take a tenth of it; dashboard/views/events/explorer.py's SEARCH_COUNT_CAP).
SELECT CASE WHEN CAST(:search AS text) IS NULL THEN (
           SELECT coalesce(sum(events), 0)
           FROM webhook_window_counts(:start, :end)
           WHERE (cardinality(CAST(:statuses AS text[])) = 0
                  OR processing_status = ANY (CAST(:statuses AS text[])))
             AND (cardinality(CAST(:event_types AS text[])) = 0
                  OR event_type = ANY (CAST(:event_types AS text[]))))
       ELSE (
           SELECT count(*) FROM (
               SELECT 1
               FROM webhook_events
               WHERE created_at >= :start AND created_at < :end
                 AND (cardinality(CAST(:statuses AS text[])) = 0
                      OR processing_status = ANY (CAST(:statuses AS text[])))
                 AND (cardinality(CAST(:event_types AS text[])) = 0
                      OR event_type = ANY (CAST(:event_types AS text[])))
                 AND ((webhook_search_words(:search) IS NOT NULL
                       AND (lower(stripe_event_id) LIKE webhook_search_prefix(:search)
                            OR lower(stripe_event_id) LIKE 'evt\_' || webhook_search_prefix(:search)))
                      OR (webhook_search_words(:search) IS NOT NULL AND error_message IS NOT NULL
                          AND to_tsvector('simple'::regconfig, error_message) @@ webhook_search_words(:search)
                          AND error_message ILIKE webhook_search_pattern(:search))
                      OR (webhook_search_words(:search) IS NULL
                          AND (stripe_event_id ILIKE webhook_search_pattern(:search)
                               OR error_message ILIKE webhook_search_pattern(:search))))
               LIMIT 1001) matching)
       END::bigint AS events

-- name: event_detail
-- Everything recorded about one event, by its Stripe id (evt_...).
SELECT stripe_event_id, event_type, processing_status, attempts, created_at, stripe_created_at,
       processing_started_at, processed_at, processing_duration_ms, error_message,
       error_category, error_details, livemode, payload,
       recovery_action, alert_level, next_retry_at, raw_payload
FROM webhook_events
WHERE stripe_event_id = :stripe_event_id
