-- The checkout domain's statements (core/checkout.py), shared by the receiver and the jobs.

-- name: complete_registration
-- Paid (or nothing to pay): the one statement that marks a registration completed, used by
-- the receiver (checkout.session.completed / async_payment_succeeded) and by reconciliation's
-- paid_but_pending auto-fix. Only a row still 'pending' changes, so a webhook or a person
-- that got there first wins; the paying session is recorded even if the app had since
-- started another one for it (the customer paid that one). A row is never given a session
-- another row already records (the column is UNIQUE). The amount the app expected is kept
-- (Stripe's fills it only when the app left it empty), so a charge of another amount stays
-- visible to reconciliation as amount_mismatch. :completed_at NULL means the transaction's time.
UPDATE public.registrations
SET processing_status = 'completed',
    completed_at = coalesce(CAST(:completed_at AS timestamptz), now()),
    amount_total = coalesce(amount_total, CAST(:amount_total AS integer)),
    currency = coalesce(currency, CAST(:currency AS text)),
    stripe_checkout_session_id = CAST(:session_id AS text),
    updated_at = coalesce(CAST(:completed_at AS timestamptz), now())
WHERE id = CAST(:registration_id AS uuid)
  AND processing_status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM public.registrations other
                  WHERE other.stripe_checkout_session_id = CAST(:session_id AS text)
                    AND other.id <> CAST(:registration_id AS uuid))
RETURNING id
