-- webhook_events_archive keeps every column of webhook_events (cleanup copies each one; a
-- test checks it): the retry job's claim column of 0060 too (always empty once archived, as
-- only completed events are archived).
ALTER TABLE webhook_events_archive ADD COLUMN IF NOT EXISTS retry_claimed_until timestamptz;
