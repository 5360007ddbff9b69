-- The app's registrations table from the pending-registration flow: the app writes a
-- 'pending' row before checkout and the checkout.session.completed webhook completes it.
-- Shipped as a reference for the demo and the tests; a real deployment already has it and
-- can skip this file (python -m jobs migrate --without-reference).
CREATE TABLE IF NOT EXISTS registrations (
    id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Null until checkout starts; the registration id goes to Stripe as client_reference_id.
    stripe_checkout_session_id text UNIQUE,
    email                      text NOT NULL,
    processing_status          text NOT NULL DEFAULT 'pending'
        CONSTRAINT registrations_status_check
        CHECK (processing_status IN ('pending', 'completed', 'failed', 'expired')),
    amount_total               integer CONSTRAINT registrations_amount_check CHECK (amount_total >= 0),
    currency                   text,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    completed_at               timestamptz,
    updated_at                 timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS registrations_created_at_idx ON registrations (created_at);
-- Stale-pending lookups (cleanup, funnel) read only the pending rows.
CREATE INDEX IF NOT EXISTS registrations_pending_created_idx
    ON registrations (created_at) WHERE processing_status = 'pending';

ALTER TABLE registrations ENABLE ROW LEVEL SECURITY;
