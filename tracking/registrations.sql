-- The pending-registration flow: what the four checkout.session events do to a
-- registration. Every change is conditional on the row still being 'pending', so a
-- repeated, late or out-of-order event never undoes a later state (an 'expired' arriving
-- after 'completed' changes nothing). Completing a paid registration is the checkout
-- domain's complete_registration (core/checkout.sql), shared with reconciliation.

-- name: registration_by_session
-- The registration that checkout session :session_id belongs to, locked for this transaction.
SELECT id::text AS id, processing_status, stripe_checkout_session_id
FROM public.registrations
WHERE stripe_checkout_session_id = CAST(:session_id AS text)
FOR UPDATE

-- name: registration_by_id
-- The registration named by the session's client_reference_id, locked for this transaction.
SELECT id::text AS id, processing_status, stripe_checkout_session_id
FROM public.registrations
WHERE id = CAST(:registration_id AS uuid)
FOR UPDATE

-- name: note_checkout_details
-- Checkout finished but a delayed payment method has not paid yet: record the session and
-- the amount, stay pending until async_payment_succeeded or _failed.
UPDATE public.registrations
SET amount_total = coalesce(amount_total, CAST(:amount_total AS integer)),
    currency = coalesce(currency, CAST(:currency AS text)),
    stripe_checkout_session_id = CAST(:session_id AS text),
    updated_at = now()
WHERE id = CAST(:registration_id AS uuid) AND processing_status = 'pending'
RETURNING id

-- name: fail_registration
-- The delayed payment failed.
UPDATE public.registrations
SET processing_status = 'failed',
    amount_total = coalesce(amount_total, CAST(:amount_total AS integer)),
    currency = coalesce(currency, CAST(:currency AS text)),
    stripe_checkout_session_id = CAST(:session_id AS text),
    updated_at = now()
WHERE id = CAST(:registration_id AS uuid) AND processing_status = 'pending'
RETURNING id

-- name: expire_registration
-- The session expired unpaid.
UPDATE public.registrations
SET processing_status = 'expired',
    stripe_checkout_session_id = CAST(:session_id AS text),
    updated_at = now()
WHERE id = CAST(:registration_id AS uuid) AND processing_status = 'pending'
RETURNING id
