-- Stripe's view of the webhook endpoints (jobs/replay/stripe_endpoints.py), as the sweep's
-- endpoint check records it.

-- name: record_endpoint
-- One endpoint as Stripe listed it at :now, with the check's judgement of it. An endpoint
-- seen disabled keeps the time it was first seen so (disabled_since).
INSERT INTO stripe_webhook_endpoints AS e (
    stripe_endpoint_id, url, status, api_version, enabled_events, livemode, description,
    stripe_created_at, watched, missing_events, expected_api_version, api_version_mismatch,
    first_seen_at, seen_at, disabled_since)
VALUES (:id, :url, :status, :api_version, :enabled_events, :livemode, :description,
        :created_at, :watched, :missing_events, :expected_api_version, :api_version_mismatch,
        :now, :now, CASE WHEN :status = 'disabled' THEN CAST(:now AS timestamptz) END)
ON CONFLICT (stripe_endpoint_id) DO UPDATE
   SET url = excluded.url, status = excluded.status, api_version = excluded.api_version,
       enabled_events = excluded.enabled_events, livemode = excluded.livemode,
       description = excluded.description, stripe_created_at = excluded.stripe_created_at,
       watched = excluded.watched, missing_events = excluded.missing_events,
       expected_api_version = excluded.expected_api_version,
       api_version_mismatch = excluded.api_version_mismatch, seen_at = excluded.seen_at,
       disabled_since = CASE WHEN excluded.status <> 'disabled' THEN NULL
                             ELSE coalesce(e.disabled_since, excluded.seen_at) END;

-- name: forget_unseen
-- Endpoints the check did not see any more (deleted at Stripe).
DELETE FROM stripe_webhook_endpoints WHERE NOT (stripe_endpoint_id = ANY(:seen));

-- name: endpoints
-- Every recorded endpoint, the app's first, then by URL (the Health page).
SELECT stripe_endpoint_id, url, status, api_version, enabled_events, livemode, description,
       watched, missing_events, expected_api_version, api_version_mismatch, first_seen_at, seen_at,
       disabled_since
FROM stripe_webhook_endpoints
ORDER BY watched DESC, url, stripe_endpoint_id;
