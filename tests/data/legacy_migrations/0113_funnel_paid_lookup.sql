-- The Funnel page's "paid" step (queries/funnel.sql funnel_by_bucket): whether a paid
-- Checkout Session event was recorded for a registration's session is one index probe by the
-- session id, instead of a scan of the window's checkout events per registration or a hash
-- of all of them. Partial: only the two event types that step looks for are indexed, so the
-- receiver maintains it for a small share of its inserts.
CREATE INDEX IF NOT EXISTS webhook_events_checkout_paid_session_idx
    ON webhook_events ((payload -> 'data' -> 'object' ->> 'id'), created_at)
    WHERE event_type IN ('checkout.session.completed', 'checkout.session.async_payment_succeeded');
