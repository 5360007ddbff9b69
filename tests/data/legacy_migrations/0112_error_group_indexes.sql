-- The Errors page's error groups at a cost flat in the size of the history (issue 14).
--
-- * webhook_event_attempts.error_fingerprint: the group key of a failed attempt,
--   public.error_fingerprint (migrations/0061) of its message ('unspecified error' when it has
--   none or only whitespace; the same key the queries derive from webhook_events.error_fingerprint), computed once when the attempt's outcome is written (a stored generated column)
--   instead of by regex over every failed attempt of the window at read time. Null for
--   attempts that did not fail.
-- * An index on the failed attempts by fingerprint and end, so one group's attempts
--   (error_group_failing_events) are an index range, not a scan of the window.
-- * An index on the failed events by the time they failed (processed_at, else created_at),
--   the instant both error queries read them by: failed events of older windows are no
--   longer read and discarded.
-- The column is added with a table rewrite: on a large attempts table, run this migration
-- in a quiet hour.

ALTER TABLE webhook_event_attempts ADD COLUMN IF NOT EXISTS error_fingerprint text
    GENERATED ALWAYS AS (CASE WHEN outcome = 'failed' THEN
        coalesce(nullif(public.error_fingerprint(error_message), ''), 'unspecified error') END) STORED;

CREATE INDEX IF NOT EXISTS webhook_event_attempts_failed_fingerprint_idx
    ON webhook_event_attempts (error_fingerprint, finished_at) INCLUDE (stripe_event_id)
    WHERE outcome = 'failed';

CREATE INDEX IF NOT EXISTS webhook_events_failed_at_idx
    ON webhook_events ((coalesce(processed_at, created_at)))
    WHERE processing_status = 'failed';
