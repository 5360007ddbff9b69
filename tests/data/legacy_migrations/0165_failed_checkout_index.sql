-- The payment_event_failed alert rule (jobs/alerting/rules.sql), which the status verdict
-- in every dashboard page's sidebar and `python -m jobs watch` run again and again, read
-- every failed checkout event of its lookback from the table (25,000 rows at 10M events,
-- the demo's outage: 110-145 ms) to count them and pick five examples. This
-- small partial index holds only failed checkout.session.* events, keyed by type then time
-- and carrying the columns the counts need, so the counts are an index-only range scan per
-- type and the five newest examples (and the latest error) five index probes per type.
-- Its predicate repeats the query's conditions word for word, which is how the planner
-- matches a partial index. Writes: only failed checkout events enter it, and every update
-- of webhook_events that sets updated_at, processed_at or next_retry_at also changes
-- processing_status, already indexed, so no update that was HOT stops being HOT.
-- Cost: migrations run in a transaction, so this is a plain CREATE INDEX (no CONCURRENTLY):
-- one pass over webhook_events holding a lock that blocks writes to it meanwhile, 8-10 s at
-- 10M events (143,000 failed checkout events) on a 2-core machine. To avoid the pause on a
-- large live table, create it by hand with CREATE INDEX CONCURRENTLY under the same name
-- first; this statement then does nothing.
CREATE INDEX IF NOT EXISTS webhook_events_failed_checkout_idx
    ON webhook_events (event_type, created_at) INCLUDE (next_retry_at, processed_at, updated_at)
    WHERE processing_status = 'failed' AND event_type LIKE 'checkout.session.%';
