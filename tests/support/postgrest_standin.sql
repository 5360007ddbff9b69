-- The three tracking functions as PostgREST calls them for supabase-js `.rpc()`: by name,
-- with the arguments the client sent (tests/support/postgrest_standin.py).

-- name: rpc_webhook_event_begin
SELECT decision, attempt, previous_status
FROM public.webhook_event_begin(
    p_stripe_event_id => CAST(:p_stripe_event_id AS text), p_event_type => CAST(:p_event_type AS text),
    p_payload => CAST(:p_payload AS jsonb), p_stripe_created_at => CAST(:p_stripe_created_at AS timestamptz),
    p_livemode => CAST(:p_livemode AS boolean), p_stale_after => CAST(:p_stale_after AS interval),
    p_source => CAST(:p_source AS text), p_raw_payload => CAST(:p_raw_payload AS text))

-- name: rpc_webhook_event_complete
SELECT public.webhook_event_complete(
    p_stripe_event_id => CAST(:p_stripe_event_id AS text), p_outcome => CAST(:p_outcome AS text),
    p_registration_id => CAST(:p_registration_id AS uuid), p_attempt => CAST(:p_attempt AS integer))

-- name: rpc_webhook_event_fail
SELECT public.webhook_event_fail(
    p_stripe_event_id => CAST(:p_stripe_event_id AS text), p_error_message => CAST(:p_error_message AS text),
    p_error_details => CAST(:p_error_details AS jsonb), p_error_category => CAST(:p_error_category AS text),
    p_attempt => CAST(:p_attempt AS integer), p_retryable => CAST(:p_retryable AS boolean))
