-- The funnel page (queries/funnel.sql) at millions of events.
--
-- funnel_by_bucket asks, for each registration whose checkout started and that is not
-- completed, whether a paid checkout event exists for its session. Without an index that
-- question walks the window's events for each registration; this partial expression index
-- (checkout events only, a few percent of the rows) answers it with one probe.
CREATE INDEX IF NOT EXISTS webhook_events_checkout_session_idx
    ON webhook_events ((payload -> 'data' -> 'object' ->> 'id'))
    WHERE event_type IN ('checkout.session.completed', 'checkout.session.async_payment_succeeded');

-- Funnel and completion times read a window of registrations by these columns only: with
-- them in the index, an index-only scan instead of visiting every registration row. The
-- registrations table is the application's (skipped with --without-reference), hence the check.
DO $$
BEGIN
    IF to_regclass('public.registrations') IS NOT NULL THEN
        CREATE INDEX IF NOT EXISTS registrations_funnel_idx ON public.registrations (created_at)
            INCLUDE (stripe_checkout_session_id, processing_status, completed_at);
    END IF;
END
$$;
