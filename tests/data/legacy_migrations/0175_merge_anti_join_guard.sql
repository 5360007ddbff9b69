-- PostgreSQL before 16.4 can return wrong rows from a "Merge Right Anti Join" whose inner
-- side has unique join keys while its outer side repeats them (fixed in 16.4: "Avoid
-- incorrect results from Merge Right Anti Join plans"). The embedded server (pgserver) is
-- PostgreSQL 16.2. "Failed events without any attempt" is exactly that shape: the events'
-- stripe_event_id is unique, an event's attempts repeat it, and with small or stale
-- statistics the planner may merge the two on their stripe_event_id indexes. It did in the
-- test suite: a NOT EXISTS over the attempts then dropped failed events that had none.
--
-- The two set-based readers of that shape run with merge joins off (a function's own
-- setting, for its statements only; hash and nested-loop anti joins are exact):
-- webhook_failure_window (the Errors page's failures of a window's partial edge hours) and
-- webhook_error_rollup_rebuild (the error rollups recomputed, e.g. after demo-data's load).
-- webhook_error_events_refresh probes one event id, which no merge join serves. A later
-- CREATE OR REPLACE of these functions must keep the setting.
ALTER FUNCTION public.webhook_failure_window(timestamptz, timestamptz) SET enable_mergejoin = off;
ALTER FUNCTION public.webhook_error_rollup_rebuild() SET enable_mergejoin = off;
