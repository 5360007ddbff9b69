-- The events explorer's page of a free-text search at 10M events (issue 14): the rows that
-- carry an error message, by arrival time. queries/events.sql's events_page walks the
-- window's newest messages on it (newest first, at most 2,000) before falling back to every
-- candidate of the word index (0131): a frequent word ("deadlock", 20,000-100,000 events a
-- month in the demo data) fills a page from the newest few hundred messages instead of
-- reading and sorting every match.
--
-- The predicate is error_fingerprint IS NOT NULL (the generated column of 0110, set exactly
-- when error_message is not empty), which only events_page states: the search's count
-- (events_count) does not, so the planner keeps counting from the word index there rather
-- than walking every message of the window.
--
-- Cost: one read of webhook_events; on the 10M-event demo database (296,000 messages,
-- 13 GB of rows) it took 12 s inside a transaction and is a few MB.
CREATE INDEX IF NOT EXISTS webhook_events_message_created_idx
    ON webhook_events (created_at)
    WHERE error_fingerprint IS NOT NULL;
