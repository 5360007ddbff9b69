-- Statements of `python -m jobs demo-data`, run in order inside one transaction.
--
-- Everything is computed set-based from generate_series. Randomness comes from hashing
-- (seed, row number, purpose) with the built-in hashint8extended, never from random(), so
-- the same seed and the same `now` give the same rows whatever order PostgreSQL computes
-- them in (parallel plans included). Times are relative to :now.
--
-- Demo objects carry metadata.source = 'demo-data' and registrations use the reserved
-- example.com/.org/.net domains: that is how --reset knows it replaces only demo rows.

-- name: set_work_mem
-- The staging tables are sorted and hashed in memory: room for that, for this transaction only.
SET LOCAL work_mem = '128MB'

-- name: set_maintenance_work_mem
-- Room for the index builds after the load to sort in memory (fewer passes over temporary
-- files at millions of rows), for this transaction only.
SET LOCAL maintenance_work_mem = '512MB'

-- name: analyze_loaded
-- Fresh statistics right after the load, so the dashboard's first queries get good plans:
-- every table the load filled, the attempts and the error rollups included (without them the
-- Errors page's first render after a load took seconds, its plans made without statistics).
ANALYZE webhook_events, registrations, webhook_event_rollup, webhook_event_duration_rollup,
        webhook_event_rollup_daily, webhook_event_duration_rollup_daily,
        webhook_event_attempts, webhook_error_events, webhook_failure_rollup,
        webhook_error_event_rollup, webhook_error_event_rollup_daily,
        registration_funnel_rollup, registration_completion_rollup, registration_payment_rollup,
        checkout_paid_sessions, registration_completion_daily, registrations_paid_unfinished

-- name: vacuum_loaded
-- A bulk load leaves the visibility map empty, so index-only scans (the dashboard's window
-- queries) would still visit every row until autovacuum came by. Outside a transaction.
VACUUM (ANALYZE) webhook_events, registrations, webhook_event_rollup, webhook_event_duration_rollup,
        webhook_event_rollup_daily, webhook_event_duration_rollup_daily,
        webhook_event_attempts, webhook_error_events, webhook_failure_rollup,
        webhook_error_event_rollup, webhook_error_event_rollup_daily,
        registration_funnel_rollup, registration_completion_rollup, registration_payment_rollup,
        checkout_paid_sessions, registration_completion_daily, registrations_paid_unfinished

-- name: create_uniform
-- demo_u(seed, i, salt): a uniform number in [0, 1) for row i and purpose salt.
CREATE OR REPLACE FUNCTION pg_temp.demo_u(seed bigint, i bigint, salt integer)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashint8extended(i, seed * 1000 + salt) & 9007199254740991)::double precision
             / 9007199254740992.0 $$

-- name: create_normal
-- demo_z(seed, i, salt): a standard normal number (Box-Muller over salt and salt + 1).
CREATE OR REPLACE FUNCTION pg_temp.demo_z(seed bigint, i bigint, salt integer)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT sqrt(-2.0 * ln(1.0 - pg_temp.demo_u(seed, i, salt)))
             * cos(2.0 * pi() * pg_temp.demo_u(seed, i, salt + 1)) $$

-- name: demo_rows_present
-- How much is already there, and one example of a row demo-data did not write (if any).
SELECT (SELECT count(*) FROM webhook_events)                  AS events,
       (SELECT count(*) FROM registrations)                   AS registrations,
       (SELECT count(*) FROM webhook_events_archive)          AS archived_events,
       (SELECT count(*) FROM registrations_archive)           AS archived_registrations,
       coalesce(
           (SELECT 'webhook event ' || stripe_event_id FROM webhook_events
             WHERE payload #>> '{data,object,metadata,source}' IS DISTINCT FROM 'demo-data' LIMIT 1),
           (SELECT 'archived webhook event ' || stripe_event_id FROM webhook_events_archive
             WHERE payload #>> '{data,object,metadata,source}' IS DISTINCT FROM 'demo-data' LIMIT 1),
           (SELECT 'registration ' || id || ' (' || email || ')' FROM registrations
             WHERE email !~ '@example\.(com|org|net)$' LIMIT 1),
           (SELECT 'archived registration ' || id || ' (' || coalesce(email, 'no email') || ')'
              FROM registrations_archive
             WHERE email IS NULL OR email !~ '@example\.(com|org|net)$' LIMIT 1)
       )                                                      AS foreign_row

-- name: clear_demo_rows
-- Replace a previous demo load: its events, registrations and everything derived from them.
TRUNCATE webhook_events, webhook_events_archive, registrations, registrations_archive,
         reconciliation_items, reconciliation_runs, cleanup_runs, webhook_event_attempts

-- name: stage_events
-- One row per webhook event to write. Segments: 'base' (the history, daily rhythm over
-- :days days), 'burst' (extra deliveries during the outage hour), 'stuck' (processing since
-- long ago), 'pending_now' and 'processing_now' (arriving right now).
CREATE TEMP TABLE demo_slots ON COMMIT DROP AS
WITH numbered AS (
    SELECT i,
           CASE WHEN i <= :base_end  THEN 'base'
                WHEN i <= :burst_end THEN 'burst'
                WHEN i <= :stuck_end THEN 'stuck'
                WHEN i <= :stuck_end + 3 THEN 'pending_now'
                ELSE 'processing_now' END                          AS segment,
           md5(CAST(:seed AS text) || '/event/' || i)              AS h,
           pg_temp.demo_u(:seed, i, 1)                             AS u_type,
           pg_temp.demo_u(:seed, i, 2)                             AS u_fail,
           pg_temp.demo_u(:seed, i, 3)                             AS u_retry,
           pg_temp.demo_u(:seed, i, 4)                             AS u_category,
           pg_temp.demo_u(:seed, i, 5)                             AS u_message,
           pg_temp.demo_u(:seed, i, 6)                             AS u_amount,
           pg_temp.demo_u(:seed, i, 7)                             AS u_misc,
           pg_temp.demo_u(:seed, i, 8)                             AS u_lag,
           pg_temp.demo_z(:seed, i, 10)                            AS z_duration,
           pg_temp.demo_u(:seed, i, 21)                            AS u_day,
           pg_temp.demo_u(:seed, i, 22)                            AS u_flat,
           pg_temp.demo_u(:seed, i, 23)                            AS u_clock,
           pg_temp.demo_z(:seed, i, 24)                            AS z_clock
    FROM generate_series(1, CAST(:total AS bigint)) AS i
    -- OFFSET 0 keeps each step a separate subquery, so its columns are computed once per
    -- row instead of being pasted into (and recomputed by) every expression that uses them.
    OFFSET 0
), clocked AS (
    SELECT n.*,
           date_trunc('day', CAST(:now AS timestamptz), 'UTC')
             - interval '1 day' * (CAST(:days AS integer) - 1 - floor(n.u_day * CAST(:days AS integer)))
             + interval '1 second' * CASE
                 WHEN n.u_flat < 0.3 THEN n.u_clock * 86400
                 ELSE (52200 + 11880 * n.z_clock) - 86400 * floor((52200 + 11880 * n.z_clock) / 86400)
               END AS base_time
    FROM numbered n
    OFFSET 0
), timed AS (
    SELECT n.*,
           CASE n.segment
             WHEN 'base' THEN
               -- Day picked uniformly, time of day from a daily rhythm: 30 % spread evenly,
               -- 70 % around 14:30 UTC (sd 3.3 h). Today's rows that would lie in the
               -- future wrap round to the partial day at the start of the window, so the
               -- window is exactly [now - days, now).
               n.base_time - CASE WHEN n.base_time >= CAST(:now AS timestamptz)
                                  THEN interval '1 day' * CAST(:days AS integer)
                                  ELSE interval '0' END
             -- The outage's extra deliveries bunch up between minutes 8 and 48.
             WHEN 'burst' THEN CAST(:outage_start AS timestamptz) + interval '8 minutes' + n.u_clock * interval '40 minutes'
             WHEN 'stuck' THEN CAST(:now AS timestamptz) - interval '40 minutes' - n.u_clock * interval '5 hours'
             WHEN 'pending_now' THEN CAST(:now AS timestamptz) - interval '2 seconds' - n.u_clock * interval '40 seconds'
             ELSE CAST(:now AS timestamptz) - interval '1 second' - n.u_clock * interval '8 seconds'
           END AS created_at
    FROM clocked n
    OFFSET 0
), typed AS (
    SELECT t.*,
           t.created_at >= CAST(:outage_start AS timestamptz)
             AND t.created_at < CAST(:outage_start AS timestamptz) + interval '1 hour' AS in_outage,
           CASE
             -- Events stuck or arriving now are kept off the checkout types, so every
             -- registration mismatch in the data is one of the deliberate ones below.
             WHEN t.segment IN ('stuck', 'pending_now', 'processing_now')
               THEN (ARRAY['payment_intent.succeeded', 'charge.succeeded', 'customer.created',
                           'payment_intent.created'])[1 + floor(t.u_type * 4)::int]
             WHEN t.u_type < 0.36 THEN 'checkout.session.completed'
             WHEN t.u_type < 0.44 THEN 'checkout.session.expired'
             WHEN t.u_type < 0.47 THEN 'checkout.session.async_payment_succeeded'
             WHEN t.u_type < 0.48 THEN 'checkout.session.async_payment_failed'
             WHEN t.u_type < 0.68 THEN 'payment_intent.succeeded'
             WHEN t.u_type < 0.82 THEN 'charge.succeeded'
             WHEN t.u_type < 0.91 THEN 'customer.created'
             WHEN t.u_type < 0.95 THEN 'payment_intent.payment_failed'
             WHEN t.u_type < 0.97 THEN 'charge.refunded'
             ELSE 'payment_intent.created'
           END AS event_type,
           (ARRAY[1500, 2500, 2500, 3500, 4900, 4900, 7500, 9900, 14900, 19900])[1 + floor(t.u_amount * 10)::int] AS amount,
           CASE WHEN t.u_amount * 7 - floor(t.u_amount * 7) < 0.7 THEN 'eur'
                WHEN t.u_amount * 7 - floor(t.u_amount * 7) < 0.9 THEN 'usd' ELSE 'gbp' END AS currency,
           (ARRAY['maria', 'james', 'li', 'amara', 'noah', 'sofia', 'lukas', 'aisha', 'mateo', 'emma',
                  'yuki', 'omar', 'chloe', 'ivan', 'fatima', 'lucas', 'mia', 'arjun', 'zoe', 'tomasz',
                  'elena', 'kwame', 'hannah', 'diego', 'ines', 'felix', 'nora', 'samir', 'julia', 'oscar']
           )[1 + (get_byte(decode(substr(t.h, 25, 2), 'hex'), 0) % 30)] AS first_name,
           (ARRAY['garcia', 'smith', 'chen', 'okafor', 'mueller', 'rossi', 'kowalski', 'nguyen', 'silva',
                  'johnson', 'tanaka', 'haddad', 'dubois', 'petrov', 'khan', 'martin', 'jensen', 'patel',
                  'brown', 'novak', 'costa', 'mensah', 'schmidt', 'lopez', 'ferreira', 'weber', 'larsen',
                  'aziz', 'fischer', 'moreau']
           )[1 + (get_byte(decode(substr(t.h, 27, 2), 'hex'), 0) % 30)] AS last_name,
           -- A first delivery that failed: :failure_rate normally (about half of them
           -- succeed on a retry later), 75 % during the outage hour. The last hour has had
           -- no time for retries, so only the share that stays failed fails there.
           t.segment IN ('base', 'burst')
             AND t.u_fail < CASE WHEN t.created_at >= CAST(:outage_start AS timestamptz)
                                  AND t.created_at < CAST(:outage_start AS timestamptz) + interval '1 hour'
                                 THEN 0.75
                                 WHEN t.created_at >= CAST(:now AS timestamptz) - interval '1 hour'
                                 THEN CAST(:failure_rate AS double precision) * (1 - CAST(:recovery_rate AS double precision))
                                 ELSE CAST(:failure_rate AS double precision) END AS delivery_failed
    FROM timed t
    OFFSET 0
), outcome AS (
    SELECT y.*,
           CASE WHEN y.event_type LIKE 'checkout.session.%' THEN 'cs_test_a1' || md5(y.h || 'cs')
                WHEN y.event_type LIKE 'charge.%' THEN 'ch_3' || substr(md5(y.h || 'ch'), 1, 23)
                WHEN y.event_type = 'customer.created' THEN 'cus_' || substr(md5(y.h || 'cus'), 1, 14)
                ELSE 'pi_3' || substr(md5(y.h || 'pi'), 1, 23) END AS object_id,
           'pi_3' || substr(md5(y.h || 'pi'), 1, 23)              AS payment_intent_id,
           'ch_3' || substr(md5(y.h || 'ch'), 1, 23)              AS charge_id,
           'req_' || substr(md5(y.h || 'req'), 1, 14)             AS request_id,
           CAST(md5(y.h || 'registration') AS uuid)               AS registration_id,
           y.first_name || '.' || y.last_name || (get_byte(decode(substr(y.h, 29, 2), 'hex'), 0) % 90 + 10)
             || '@example.' || (ARRAY['com', 'org', 'net'])[1 + get_byte(decode(substr(y.h, 31, 2), 'hex'), 0) % 3]
                                                                  AS email,
           -- Failed then recovered on a retry (30 % of the outage's failures, once it was
           -- over). Retries need time, so nothing from the last hour has been retried.
           y.delivery_failed AND y.created_at < CAST(:now AS timestamptz) - interval '1 hour'
             AND y.u_retry < CASE WHEN y.in_outage THEN 0.3 ELSE CAST(:recovery_rate AS double precision) END
                                                                  AS recovered,
           -- Error kind, for failures and for the error a recovered delivery once hit.
           CASE WHEN y.in_outage THEN CASE WHEN y.u_category < 0.65 THEN 'database' ELSE 'network' END
                WHEN y.u_category < 0.30 THEN 'network'
                WHEN y.u_category < 0.55 THEN 'validation'
                WHEN y.u_category < 0.78 THEN 'database'
                WHEN y.u_category < 0.95 THEN 'stripe'
                ELSE 'unknown' END                                AS category
    FROM typed y
    OFFSET 0
), finished AS (
    SELECT o.*,
           CASE WHEN o.segment = 'pending_now' THEN 'pending'
                WHEN o.segment IN ('stuck', 'processing_now') THEN 'processing'
                WHEN o.delivery_failed AND NOT o.recovered THEN 'failed'
                ELSE 'completed' END                              AS final_status,
           CASE WHEN o.segment = 'pending_now' THEN 0
                WHEN o.recovered THEN 2 + floor(o.u_misc * 3)::int
                -- Stripe retries a failing delivery for days; at most about one retry an
                -- hour has happened yet.
                WHEN o.delivery_failed THEN least(1 + floor(o.u_misc * 6)::int,
                                                  1 + floor(extract(epoch FROM CAST(:now AS timestamptz) - o.created_at) / 3600)::int)
                ELSE 1 END                                        AS attempts,
           -- Long-tailed: lognormal around 85 ms, plus 1 % cold starts of seconds. A
           -- failure takes as long as its kind does (timeouts wait 10-30 s).
           CASE WHEN o.delivery_failed AND NOT o.recovered THEN
                  CASE o.category
                    WHEN 'network'    THEN 10000 + floor(o.u_lag * 20000)
                    WHEN 'database'   THEN 400 + floor(o.u_lag * 4600)
                    WHEN 'stripe'     THEN 250 + floor(o.u_lag * 2000)
                    WHEN 'validation' THEN 4 + floor(o.u_lag * 40)
                    ELSE 15 + floor(o.u_lag * 300) END
                ELSE greatest(3, round(exp(ln(85) + 0.85 * o.z_duration))
                                 + CASE WHEN o.u_lag < 0.01 THEN 1500 + floor(o.u_misc * 4500) ELSE 0 END)
           END                                                    AS duration_ms
    FROM outcome o
    OFFSET 0
), timestamped AS (
SELECT f.*,
       -- When the last attempt began: retries of a recovered delivery come later (after
       -- the outage for the outage's events, Stripe's backoff otherwise).
       CASE WHEN f.final_status = 'pending' THEN NULL
            WHEN f.recovered AND f.in_outage
              THEN CAST(:outage_start AS timestamptz) + interval '65 minutes' + f.u_lag * interval '40 minutes'
            WHEN f.recovered
              THEN f.created_at + interval '5 minutes' * power(3, f.attempts - 2) * (0.8 + 0.4 * f.u_lag)
            WHEN f.segment = 'processing_now' THEN f.created_at + interval '150 milliseconds'
            WHEN f.delivery_failed AND f.attempts > 1
              THEN f.created_at + interval '1 hour' * (f.attempts - 1) * (0.9 + 0.1 * f.u_lag)
            ELSE f.created_at + interval '40 milliseconds'
       END                                                        AS started_at,
       -- Stripe created the event a moment before the first delivery arrived.
       f.created_at - interval '200 milliseconds' - f.u_lag * interval '2500 milliseconds' AS stripe_created_at,
       initcap(f.first_name) || ' ' || initcap(f.last_name)      AS name,
       -- Delayed payment methods: the session completes unpaid and the money follows days
       -- later; only recent checkouts are still waiting.
       f.event_type = 'checkout.session.completed'
         AND f.u_amount * 13 - floor(f.u_amount * 13) < 0.08
         AND f.created_at > CAST(:now AS timestamptz) - interval '3 days' AS delayed_payment,
       -- The registration row is written when checkout starts: minutes before the completed
       -- event, 24 h before expiry, days before an asynchronous payment's outcome.
       CASE f.event_type
         WHEN 'checkout.session.completed' THEN f.created_at - interval '90 seconds' - f.u_misc * interval '10 minutes'
         WHEN 'checkout.session.expired' THEN f.created_at - interval '24 hours' - f.u_misc * interval '2 minutes'
         WHEN 'checkout.session.async_payment_succeeded' THEN f.created_at - interval '1 day' - f.u_misc * interval '2 days'
         WHEN 'checkout.session.async_payment_failed' THEN f.created_at - interval '1 day' - f.u_misc * interval '2 days'
       END                                                        AS registration_created_at,
       CASE WHEN f.in_outage AND f.category = 'database' THEN 2
            ELSE floor(f.u_message * 3)::int END                  AS message_variant,
       CAST(NULL AS text)                                         AS error_message,
       CAST(NULL AS text)                                         AS exception
FROM finished f
OFFSET 0
)
SELECT t.*,
       -- Time-ordered ids, like Stripe's (and UUIDv7 for the row id): realistic, and the
       -- indexes on them fill in order instead of at random.
       CAST(lpad(to_hex(floor(extract(epoch FROM t.created_at) * 1000)::bigint), 12, '0')
            || '7' || substr(t.h, 14, 19) AS uuid)                AS row_id,
       'evt_1' || lpad(to_hex(floor(extract(epoch FROM t.stripe_created_at))::bigint), 8, '0')
         || substr(t.h, 1, 15)                                    AS stripe_event_id,
       floor(extract(epoch FROM t.stripe_created_at))::bigint     AS stripe_created,
       floor(extract(epoch FROM t.registration_created_at))::bigint + 1 AS session_created
FROM timestamped t

-- name: settle_events
-- An attempt that would end after :now is still running; retries never lie in the future.
UPDATE demo_slots
SET final_status = 'processing', duration_ms = NULL
WHERE final_status IN ('completed', 'failed')
  AND started_at + interval '1 millisecond' * duration_ms >= CAST(:now AS timestamptz)

-- name: stage_checkouts
-- One row per Checkout Session and/or registration: those behind the checkout events,
-- and those no event speaks of (sessions still open, stale pendings, and one group per
-- reconciliation mismatch kind). Columns prefixed stripe_ are Stripe's side.
CREATE TEMP TABLE demo_checkouts ON COMMIT DROP AS
SELECT 'checkout'                                                   AS scenario,
       s.registration_id,
       true                                                         AS has_registration,
       s.email,
       s.name,
       -- A checkout the app failed to record stays pending: that is what reconcile finds.
       CASE WHEN s.final_status <> 'completed' THEN 'pending'
            WHEN s.event_type = 'checkout.session.expired' THEN 'expired'
            WHEN s.event_type = 'checkout.session.async_payment_failed' THEN 'failed'
            WHEN s.event_type = 'checkout.session.completed' AND s.delayed_payment THEN 'pending'
            ELSE 'completed' END                                    AS local_status,
       s.amount                                                     AS local_amount,
       s.currency                                                   AS local_currency,
       s.registration_created_at,
       CASE WHEN s.final_status = 'completed'
             AND s.event_type IN ('checkout.session.completed', 'checkout.session.async_payment_succeeded')
             AND NOT s.delayed_payment
            THEN s.started_at + interval '1 millisecond' * s.duration_ms END AS completed_at,
       s.object_id                                                  AS session_id,
       true                                                         AS in_stripe,
       CASE WHEN s.event_type = 'checkout.session.expired' THEN 'expired' ELSE 'complete' END AS stripe_status,
       CASE WHEN s.event_type IN ('checkout.session.expired', 'checkout.session.async_payment_failed')
              OR s.delayed_payment THEN 'unpaid' ELSE 'paid' END   AS stripe_payment_status,
       s.amount                                                     AS stripe_amount,
       s.currency                                                   AS stripe_currency,
       s.payment_intent_id,
       s.delayed_payment,
       NULL::text                                                   AS undelivered_event_type
FROM demo_slots s
WHERE s.event_type LIKE 'checkout.session.%'
UNION ALL
SELECT x.scenario,
       CAST(md5(x.h || 'registration') AS uuid),
       x.scenario <> 'paid_no_registration',
       x.first_name || '.' || x.last_name || (get_byte(decode(substr(x.h, 29, 2), 'hex'), 0) % 90 + 10)
         || '@example.' || (ARRAY['com', 'org', 'net'])[1 + get_byte(decode(substr(x.h, 31, 2), 'hex'), 0) % 3],
       initcap(x.first_name) || ' ' || initcap(x.last_name),
       CASE WHEN x.scenario IN ('paid_but_failed') THEN 'failed'
            WHEN x.scenario IN ('completed_not_paid', 'completed_missing_in_stripe', 'amount_mismatch') THEN 'completed'
            ELSE 'pending' END,
       x.amount, x.currency,
       x.created_at,
       CASE WHEN x.scenario IN ('completed_not_paid', 'completed_missing_in_stripe', 'amount_mismatch')
            THEN x.created_at + interval '3 minutes' END,
       CASE WHEN x.scenario = 'stale_pending_no_session' THEN NULL ELSE 'cs_test_a1' || md5(x.h || 'cs') END,
       x.scenario NOT IN ('stale_pending_no_session', 'completed_missing_in_stripe'),
       CASE WHEN x.scenario IN ('open_pending') THEN 'open'
            WHEN x.scenario = 'completed_not_paid' AND x.j % 2 = 0 THEN 'open'
            WHEN x.scenario IN ('stale_pending_expired', 'expired_but_pending', 'completed_not_paid') THEN 'expired'
            ELSE 'complete' END,
       CASE WHEN x.scenario IN ('open_pending', 'stale_pending_expired', 'expired_but_pending', 'completed_not_paid')
            THEN 'unpaid' ELSE 'paid' END,
       -- amount_mismatch: Stripe charged less (odd rows) or in another currency (even rows).
       CASE WHEN x.scenario = 'amount_mismatch' AND x.j % 2 = 1 THEN x.amount - 500 ELSE x.amount END,
       CASE WHEN x.scenario = 'amount_mismatch' AND x.j % 2 = 0
            THEN CASE x.currency WHEN 'usd' THEN 'eur' ELSE 'usd' END ELSE x.currency END,
       'pi_3' || substr(md5(x.h || 'pi'), 1, 23),
       false,
       -- Stripe sent these events, but they never reached the app.
       CASE WHEN x.scenario IN ('paid_but_pending', 'paid_no_registration') THEN 'checkout.session.completed'
            WHEN x.scenario = 'expired_but_pending' THEN 'checkout.session.expired' END
FROM (
    SELECT g.scenario, j, h,
           (ARRAY['maria', 'james', 'li', 'amara', 'noah', 'sofia', 'lukas', 'aisha', 'mateo', 'emma'])
             [1 + get_byte(decode(substr(h, 25, 2), 'hex'), 0) % 10] AS first_name,
           (ARRAY['garcia', 'smith', 'chen', 'okafor', 'mueller', 'rossi', 'kowalski', 'nguyen', 'silva', 'khan'])
             [1 + get_byte(decode(substr(h, 27, 2), 'hex'), 0) % 10] AS last_name,
           (ARRAY[2500, 4900, 9900])[1 + get_byte(decode(substr(h, 1, 2), 'hex'), 0) % 3] AS amount,
           (ARRAY['eur', 'eur', 'usd'])[1 + get_byte(decode(substr(h, 3, 2), 'hex'), 0) % 3] AS currency,
           CAST(:now AS timestamptz) - CASE
             -- Still at the checkout page: sessions are open for 24 h.
             WHEN g.scenario = 'open_pending' OR (g.scenario = 'completed_not_paid' AND j % 2 = 0)
               THEN interval '5 minutes' + u * interval '20 hours'
             -- Older than cleanup's default 7 days, younger than Stripe's 30 days of events.
             WHEN g.scenario LIKE 'stale_pending%' THEN interval '8 days' + u * interval '12 days'
             -- Inside a default reconcile's 7 days.
             ELSE interval '26 hours' + u * interval '4 days'
           END AS created_at
    FROM (VALUES ('open_pending', CAST(:open_pending AS integer)),
                 ('stale_pending_no_session', CAST(:stale_each AS integer)),
                 ('stale_pending_expired', CAST(:stale_each AS integer)),
                 ('stale_pending_paid', CAST(:stale_each AS integer)),
                 ('paid_but_pending', CAST(:mismatch_each AS integer)),
                 ('expired_but_pending', CAST(:mismatch_each AS integer)),
                 ('paid_but_failed', CAST(:mismatch_each AS integer)),
                 ('paid_no_registration', CAST(:mismatch_each AS integer)),
                 ('completed_not_paid', CAST(:mismatch_each AS integer)),
                 ('completed_missing_in_stripe', CAST(:mismatch_each AS integer)),
                 ('amount_mismatch', CAST(:mismatch_each AS integer))) AS g (scenario, how_many)
    CROSS JOIN LATERAL generate_series(1, g.how_many) AS j
    CROSS JOIN LATERAL (SELECT md5(CAST(:seed AS text) || '/' || g.scenario || '/' || j) AS h) AS hashed
    CROSS JOIN LATERAL (SELECT (get_byte(decode(substr(h, 5, 4), 'hex'), 0) * 256
                                + get_byte(decode(substr(h, 5, 4), 'hex'), 1)) / 65536.0 AS u) AS uniform
) x

-- name: describe_errors
-- What a handler's exception said, for the failures and for the error a recovered delivery
-- once hit: ids and numbers included, as in real logs, so the Errors page's fingerprinting
-- has something to normalise. Only these few percent of rows pay for the text.
UPDATE demo_slots s
SET error_message = CASE s.category || '/' || s.message_variant
      WHEN 'network/0' THEN 'Timeout after ' || (10 + floor(s.u_lag * 20))::int * 1000 || ' ms calling https://mailer.internal.example/v1/send for ' || s.object_id
      WHEN 'network/1' THEN 'HTTPSConnectionPool(host=''api.stripe.com'', port=443): Read timed out. (read timeout=' || (20 + floor(s.u_lag * 10))::int || ')'
      WHEN 'network/2' THEN '[Errno 104] Connection reset by peer while sending the receipt for ' || s.object_id || ' to ' || s.email
      WHEN 'validation/0' THEN 'Missing client_reference_id on ' || s.object_id
      WHEN 'validation/1' THEN 'Invalid customer email ''' || s.email || ''' for registration ' || s.registration_id || ': domain does not accept mail'
      WHEN 'validation/2' THEN 'amount_total ' || s.amount || ' does not match ticket price ' || (s.amount + 1000) || ' for registration ' || s.registration_id
      WHEN 'database/0' THEN 'deadlock detected: Process ' || (10000 + get_byte(decode(substr(s.h, 3, 4), 'hex'), 0) * 97)
                             || ' waits for ShareLock on transaction ' || (700000 + get_byte(decode(substr(s.h, 7, 4), 'hex'), 1) * 1013)
                             || '; blocked by process ' || (10000 + get_byte(decode(substr(s.h, 11, 4), 'hex'), 0) * 89) || '.'
      WHEN 'database/1' THEN 'duplicate key value violates unique constraint "registrations_stripe_checkout_session_id_key": Key (stripe_checkout_session_id)=('
                             || 'cs_test_a1' || md5(s.h || 'cs') || ') already exists.'
      WHEN 'database/2' THEN 'QueuePool limit of size 10 overflow 5 reached, connection timed out, timeout ' || (30 + floor(s.u_lag * 3))::int || '.00'
      WHEN 'stripe/0' THEN 'Request ' || s.request_id || ': No such checkout.session: ''cs_test_a1' || md5(s.h || 'cs') || ''''
      WHEN 'stripe/1' THEN 'Request ' || s.request_id || ': Too many requests hit the API too quickly (HTTP 429), retry after ' || (1 + floor(s.u_lag * 5))::int || ' s'
      WHEN 'stripe/2' THEN 'Request ' || s.request_id || ': An unknown error occurred (HTTP 500) while retrieving ' || s.payment_intent_id
      WHEN 'unknown/0' THEN 'KeyError: ''line_items'' in handle_checkout_completed (worker ' || (1 + floor(s.u_lag * 8))::int || ')'
      WHEN 'unknown/1' THEN 'TypeError: ''NoneType'' object is not subscriptable (handlers/webhook.py, line ' || (120 + floor(s.u_lag * 80))::int || ')'
      ELSE 'RuntimeError: event loop is closed while handling ' || s.stripe_event_id END,
    exception = CASE s.category || '/' || s.message_variant
      WHEN 'network/0' THEN 'httpx.ReadTimeout'
      WHEN 'network/1' THEN 'requests.exceptions.ReadTimeout'
      WHEN 'network/2' THEN 'ConnectionResetError'
      WHEN 'validation/0' THEN 'ValueError'
      WHEN 'validation/1' THEN 'pydantic.ValidationError'
      WHEN 'validation/2' THEN 'ValueError'
      WHEN 'database/0' THEN 'psycopg.errors.DeadlockDetected'
      WHEN 'database/1' THEN 'psycopg.errors.UniqueViolation'
      WHEN 'database/2' THEN 'sqlalchemy.exc.TimeoutError'
      WHEN 'stripe/0' THEN 'stripe.InvalidRequestError'
      WHEN 'stripe/1' THEN 'stripe.RateLimitError'
      WHEN 'stripe/2' THEN 'stripe.APIError'
      WHEN 'unknown/0' THEN 'KeyError'
      WHEN 'unknown/1' THEN 'TypeError'
      ELSE 'RuntimeError' END
WHERE s.delivery_failed

-- name: drop_secondary_indexes
-- Indexes are built once after the load instead of updated row by row during it (several
-- times faster at millions of rows; a primary key or unique index of random ids filled row by
-- row touches a random page per row, which at 10M rows no longer fits in the cache). The
-- definitions of every index of webhook_events, webhook_event_attempts and registrations, and of their primary key
-- and unique constraints that no foreign key depends on, are kept in temporary tables, then
-- the constraints and indexes dropped; the tables are empty here (a fresh database, or the
-- previous demo data truncated), inside this transaction. create_secondary_indexes adds the
-- constraints back first, which checks the loaded rows: a duplicate id fails the whole load.
DO $$
DECLARE
    ix record;
BEGIN
    CREATE TEMP TABLE demo_constraint_defs ON COMMIT DROP AS
    SELECT c.conrelid::regclass::text AS table_name, c.conname AS constraint_name,
           pg_get_constraintdef(c.oid) AS definition
    FROM pg_constraint c
    WHERE c.conrelid IN ('public.webhook_events'::regclass, 'public.registrations'::regclass,
                         'public.webhook_event_attempts'::regclass)
      AND c.contype IN ('p', 'u')
      AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = c.conindid);
    CREATE TEMP TABLE demo_index_defs ON COMMIT DROP AS
    SELECT i.indexrelid::regclass::text AS index_name, pg_get_indexdef(i.indexrelid) AS definition
    FROM pg_index i
    WHERE i.indrelid IN ('public.webhook_events'::regclass, 'public.registrations'::regclass,
                         'public.webhook_event_attempts'::regclass)
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
    FOR ix IN SELECT table_name, constraint_name FROM demo_constraint_defs LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', ix.table_name, ix.constraint_name);
    END LOOP;
    FOR ix IN SELECT index_name FROM demo_index_defs LOOP
        EXECUTE 'DROP INDEX ' || ix.index_name;
    END LOOP;
END
$$

-- name: create_secondary_indexes
-- The constraints and indexes drop_secondary_indexes dropped, built again over the loaded
-- rows (each one sort of the table instead of a million random inserts).
DO $$
DECLARE
    ix record;
BEGIN
    FOR ix IN SELECT table_name, constraint_name, definition FROM demo_constraint_defs LOOP
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', ix.table_name, ix.constraint_name, ix.definition);
    END LOOP;
    FOR ix IN SELECT definition FROM demo_index_defs LOOP
        EXECUTE ix.definition;
    END LOOP;
    DROP TABLE demo_constraint_defs;
    DROP TABLE demo_index_defs;
END
$$

-- name: pause_rollup_triggers
-- The rollup trigger (migrations/functions/event_rollups.sql) would append a change row per
-- loaded row, and the error rollups' triggers on webhook_event_attempts
-- (migrations/functions/error_rollups.sql) would probe webhook_events for each attempt, a scan
-- of the whole table while its indexes are set aside; rebuild_rollups recomputes all these
-- rollups set-based after the load instead. Inside this transaction: no other writer sees
-- the tables without them.
DO $$
BEGIN
    ALTER TABLE webhook_events DISABLE TRIGGER webhook_events_rollup;
    ALTER TABLE webhook_events DISABLE TRIGGER webhook_events_error_rollup_fold;
    ALTER TABLE webhook_event_attempts DISABLE TRIGGER webhook_event_attempts_error_rollup;
    ALTER TABLE webhook_event_attempts DISABLE TRIGGER webhook_event_attempts_error_rollup_fold;
END
$$

-- name: rebuild_rollups
-- The rollups of the loaded rows, computed set-based.
SELECT webhook_rollup_rebuild()

-- name: pause_registration_rollup_triggers
-- The registration rollups' triggers (migrations/functions/registration_rollups.sql): one on
-- registrations, three on the paid Checkout Session events of webhook_events, each a probe
-- per loaded row; rebuild_registration_rollups computes the rollups set-based after the load
-- instead. Inside this transaction: no other writer sees the tables without them.
DO $$
BEGIN
    ALTER TABLE registrations DISABLE TRIGGER registrations_rollup;
    ALTER TABLE webhook_events DISABLE TRIGGER webhook_events_registration_paid;
    ALTER TABLE webhook_events DISABLE TRIGGER webhook_events_registration_paid_update;
    ALTER TABLE webhook_events DISABLE TRIGGER webhook_events_registration_paid_delete;
END
$$

-- name: resume_registration_rollup_triggers
-- The registration rollups' triggers back on (pause_registration_rollup_triggers).
DO $$
BEGIN
    ALTER TABLE registrations ENABLE TRIGGER registrations_rollup;
    ALTER TABLE webhook_events ENABLE TRIGGER webhook_events_registration_paid;
    ALTER TABLE webhook_events ENABLE TRIGGER webhook_events_registration_paid_update;
    ALTER TABLE webhook_events ENABLE TRIGGER webhook_events_registration_paid_delete;
END
$$

-- name: rebuild_registration_rollups
-- The registration rollups of the loaded rows, computed set-based.
SELECT registration_rollup_rebuild()

-- name: resume_rollup_triggers
-- The rollup triggers back on (pause_rollup_triggers).
DO $$
BEGIN
    ALTER TABLE webhook_events ENABLE TRIGGER webhook_events_rollup;
    ALTER TABLE webhook_events ENABLE TRIGGER webhook_events_error_rollup_fold;
    ALTER TABLE webhook_event_attempts ENABLE TRIGGER webhook_event_attempts_error_rollup;
    ALTER TABLE webhook_event_attempts ENABLE TRIGGER webhook_event_attempts_error_rollup_fold;
END
$$

-- name: set_api_version
-- The API version the payloads carry, for copy_events_out (a COPY takes no parameters).
SELECT set_config('demo.api_version', CAST(:api_version AS text), true)

-- name: truncate_events
-- webhook_events is empty here (a fresh database, or the previous demo data truncated);
-- truncated again in this transaction so that copy_events_in may write its rows frozen.
TRUNCATE webhook_events

-- name: copy_events_in
-- The rows of copy_events_out, written frozen (FREEZE: the table was truncated in this
-- transaction, so no other transaction can see them before the commit): they need no
-- VACUUM to be visible to index-only scans, and no later pass setting hint bits.
COPY webhook_events (
    id, stripe_event_id, event_type, processing_status, payload, error_message, attempts,
    created_at, processed_at, processing_duration_ms, stripe_created_at, livemode,
    processing_started_at, error_category, error_details, updated_at, next_retry_at,
    recovery_action, alert_level)
FROM STDIN WITH (FREEZE)

-- name: copy_events_out
-- The webhook_events rows, oldest first as a live table fills, with compact but
-- real-shaped Stripe event payloads (the fields a handler reads), for copy_events_in.
-- Computed by a second session from its own identical demo_slots while the loading session
-- stages its own and parses and writes what arrives: the two halves of the work run on
-- two cores. Each payload is written as JSON text (parsed into jsonb by copy_events_in):
-- the same jsonb as nested jsonb_build_object calls (keys are sorted and values typed by
-- the parser alike), at half the cost, since every nested object built as jsonb was read
-- again by the object around it. Every value spliced in comes from this file (ids, names
-- and emails from fixed alphabets), so none needs JSON escaping; a space follows each
-- colon before a bare literal only because ":name" would read as a bind parameter. The
-- staged rows are sorted before the payloads are built, so the sort does not carry them.
-- A failed event's plan is the rule webhook_event_fail applies (error_retry_policy): the
-- next automatic retry while attempts remain, else a person.
COPY (
SELECT s.row_id,
       s.stripe_event_id,
       s.event_type,
       s.final_status,
       CAST(
           '{"id":"' || s.stripe_event_id
        || '","object":"event","api_version":"' || current_setting('demo.api_version')
        || '","created":' || s.stripe_created
        || ',"livemode": false,"pending_webhooks":' || CASE WHEN s.final_status = 'completed' THEN '0' ELSE '1' END
        || ',"request":{"id":' || CASE WHEN s.event_type LIKE 'checkout.session.%' THEN 'null'
                                       ELSE '"' || s.request_id || '"' END
        || ',"idempotency_key": null},"type":"' || s.event_type
        || '","data":{"object":' || CASE
             WHEN s.event_type LIKE 'checkout.session.%' THEN
                  '{"id":"' || s.object_id
               || '","object":"checkout.session","amount_subtotal":' || s.amount
               || ',"amount_total":' || s.amount
               || ',"automatic_tax":{"enabled": false,"liability": null,"provider": null,"status": null}'
               || ',"client_reference_id":"' || s.registration_id
               || '","created":' || s.session_created
               || ',"currency":"' || s.currency
               || '","customer": null,"custom_fields":[],"custom_text":{"after_submit": null,"shipping_address": null,'
               || '"submit": null,"terms_of_service_acceptance": null},"customer_details":{"email":"' || s.email
               || '","name":"' || s.name
               || '"},"customer_email":"' || s.email
               || '","expires_at":' || (s.session_created + 86400)
               || ',"livemode": false,"metadata":{"registration_id":"' || s.registration_id
               || '","source":"demo-data"},"mode":"payment","payment_intent":'
               || CASE WHEN s.event_type = 'checkout.session.expired' THEN 'null'
                       ELSE '"' || s.payment_intent_id || '"' END
               || ',"payment_method_types":' || CASE WHEN s.event_type LIKE '%async%' OR s.delayed_payment
                                                     THEN '["sepa_debit"]' ELSE '["card"]' END
               || ',"payment_status":' || CASE WHEN s.event_type IN ('checkout.session.expired', 'checkout.session.async_payment_failed')
                                                 OR s.delayed_payment THEN '"unpaid"' ELSE '"paid"' END
               || ',"shipping_options":[],"status":' || CASE WHEN s.event_type = 'checkout.session.expired'
                                                             THEN '"expired"' ELSE '"complete"' END
               || ',"success_url":"https://events.example.com/register/thanks?session_id={CHECKOUT_SESSION_ID}","url": null}'
             WHEN s.event_type LIKE 'payment_intent.%' THEN
                  '{"id":"' || s.payment_intent_id
               || '","object":"payment_intent","amount":' || s.amount
               || ',"amount_received":' || CASE WHEN s.event_type = 'payment_intent.succeeded' THEN s.amount ELSE 0 END
               || ',"created":' || (s.stripe_created - 2)
               || ',"currency":"' || s.currency
               || '","customer": null,"last_payment_error":' || CASE WHEN s.event_type = 'payment_intent.payment_failed'
                    THEN '{"code":"card_declined","decline_code":"'
                         || (ARRAY['insufficient_funds', 'generic_decline', 'expired_card'])[1 + floor(s.u_misc * 3)::int]
                         || '","message":"Your card was declined.","type":"card_error"}'
                    ELSE 'null' END
               || ',"latest_charge":' || CASE WHEN s.event_type = 'payment_intent.succeeded'
                                              THEN '"' || s.charge_id || '"' ELSE 'null' END
               || ',"livemode": false,"metadata":{"source":"demo-data"},"payment_method_types":["card"],"receipt_email":"'
               || s.email
               || '","status":' || CASE s.event_type WHEN 'payment_intent.succeeded' THEN '"succeeded"'
                                                     ELSE '"requires_payment_method"' END
               || '}'
             WHEN s.event_type LIKE 'charge.%' THEN
                  '{"id":"' || s.charge_id
               || '","object":"charge","amount":' || s.amount
               || ',"amount_captured":' || s.amount
               || ',"amount_refunded":' || CASE WHEN s.event_type = 'charge.refunded' THEN s.amount ELSE 0 END
               || ',"billing_details":{"email":"' || s.email
               || '","name":"' || s.name
               || '"},"captured": true,"created":' || (s.stripe_created - 1)
               || ',"currency":"' || s.currency
               || '","livemode": false,"metadata":{"source":"demo-data"},"paid": true,"payment_intent":"' || s.payment_intent_id
               || '","receipt_email":"' || s.email
               || '","refunded":' || CASE WHEN s.event_type = 'charge.refunded' THEN 'true' ELSE 'false' END
               || ',"status":"succeeded"}'
             ELSE
                  '{"id":"' || s.object_id
               || '","object":"customer","created":' || s.stripe_created
               || ',"description": null,"email":"' || s.email
               || '","livemode": false,"metadata":{"source":"demo-data"},"name":"' || s.name
               || '"}'
           END
        || '}}' AS jsonb),
       CASE WHEN s.final_status = 'failed' THEN s.error_message END,
       s.attempts,
       s.created_at,
       CASE WHEN s.final_status IN ('completed', 'failed')
            THEN s.started_at + interval '1 millisecond' * s.duration_ms END,
       CASE WHEN s.final_status IN ('completed', 'failed') THEN CAST(s.duration_ms AS integer) END,
       s.stripe_created_at,
       false,
       s.started_at,
       CASE WHEN s.final_status = 'failed' THEN s.category END,
       CASE WHEN s.final_status = 'failed'
              THEN jsonb_build_object('exception', s.exception, 'attempt', s.attempts,
                                      'retryable', s.category IN ('network', 'database', 'stripe'))
            WHEN s.recovered
              -- The delivery succeeded on a later attempt; what the earlier one hit.
              THEN jsonb_build_object('recovered_after', jsonb_build_object(
                       'error_category', s.category, 'error_message', s.error_message,
                       'exception', s.exception, 'attempts', s.attempts - 1)) END,
       coalesce(s.started_at + interval '1 millisecond' * s.duration_ms, s.started_at, s.created_at),
       CASE WHEN s.final_status = 'failed' THEN (
           SELECT CASE WHEN cardinality(p.retry_delays_s) > 0 AND s.attempts < p.max_attempts
                       THEN s.started_at + interval '1 millisecond' * s.duration_ms
                            + make_interval(secs => p.retry_delays_s[least(s.attempts, cardinality(p.retry_delays_s))]) END
           FROM error_retry_policy p WHERE p.category = s.category) END,
       CASE WHEN s.final_status = 'failed' THEN (
           SELECT CASE WHEN cardinality(p.retry_delays_s) > 0 AND s.attempts < p.max_attempts THEN p.recovery_action ELSE p.recovery_action_exhausted END
           FROM error_retry_policy p WHERE p.category = s.category) END,
       CASE WHEN s.final_status = 'failed' THEN (
           SELECT CASE WHEN cardinality(p.retry_delays_s) > 0 AND s.attempts < p.max_attempts THEN p.alert_level ELSE 'critical' END
           FROM error_retry_policy p WHERE p.category = s.category) END
FROM (SELECT * FROM demo_slots ORDER BY created_at OFFSET 0) AS s
) TO STDOUT

-- name: insert_attempts
-- One webhook_event_attempts row per attempt of the events that failed at least once, as the
-- tracking functions write them: the failed attempts with their error (a recovered event's
-- too), then the attempt that completed a recovered event. Retries alternate between
-- Stripe's deliveries and the monitor's retry job.
INSERT INTO webhook_event_attempts (
    stripe_event_id, event_type, attempt, source, started_at, finished_at, duration_ms, outcome,
    error_message, error_category, retryable)
SELECT s.stripe_event_id, s.event_type, n.attempt,
       CASE WHEN n.attempt > 1 AND n.attempt % 2 = 0 THEN 'retry' ELSE 'delivery' END,
       t.started,
       t.started + interval '1 millisecond' * coalesce(s.duration_ms, 0),
       coalesce(s.duration_ms, 0),
       CASE WHEN n.attempt < s.attempts OR s.final_status = 'failed' THEN 'failed' ELSE 'completed' END,
       CASE WHEN n.attempt < s.attempts OR s.final_status = 'failed' THEN s.error_message END,
       CASE WHEN n.attempt < s.attempts OR s.final_status = 'failed' THEN s.category END,
       CASE WHEN n.attempt < s.attempts OR s.final_status = 'failed' THEN s.category <> 'validation' END
FROM demo_slots s
CROSS JOIN LATERAL generate_series(1, s.attempts) AS n (attempt)
CROSS JOIN LATERAL (SELECT s.created_at + (s.started_at - s.created_at) * (n.attempt - 1)
                                          / greatest(s.attempts - 1, 1) AS started) AS t
WHERE s.delivery_failed AND s.final_status IN ('completed', 'failed') AND s.started_at IS NOT NULL

-- name: insert_registrations
-- The registrations in the state their webhooks left them (stale pendings and the planted
-- reconciliation mismatches included), oldest first.
INSERT INTO registrations (id, stripe_checkout_session_id, email, processing_status, amount_total,
                           currency, created_at, completed_at, updated_at)
SELECT registration_id, session_id, email, local_status, local_amount, local_currency,
       registration_created_at, completed_at, coalesce(completed_at, registration_created_at)
FROM demo_checkouts
WHERE has_registration
ORDER BY registration_created_at

-- name: stripe_sessions
-- Stripe's side for the local Stripe server: the sessions of the last :stripe_days days and
-- every session a pending or failed registration points at, newest first, with the events
-- that never reached the app.
SELECT session_id, registration_id, email, name, stripe_status, stripe_payment_status,
       stripe_amount, stripe_currency, payment_intent_id, delayed_payment,
       floor(extract(epoch FROM registration_created_at))::bigint + 1 AS created,
       CASE WHEN local_status IN ('completed') AND completed_at IS NOT NULL
            THEN floor(extract(epoch FROM completed_at))::bigint END AS completed,
       undelivered_event_type, scenario
FROM demo_checkouts
WHERE in_stripe
  AND (registration_created_at >= CAST(:now AS timestamptz) - interval '1 day' * CAST(:stripe_days AS integer)
       OR local_status IN ('pending', 'failed'))
ORDER BY registration_created_at DESC, session_id
LIMIT :max_sessions

-- name: stripe_events
-- Checkout events for Stripe's Events API, newest first: those of the last :recent_days
-- days, and every one whose delivery has not succeeded within the 30 days Stripe keeps.
SELECT payload
FROM webhook_events
WHERE event_type LIKE 'checkout.session.%'
  AND created_at >= CAST(:now AS timestamptz) - interval '1 day' * CAST(:stripe_days AS integer)
  AND (created_at >= CAST(:now AS timestamptz) - interval '1 day' * CAST(:recent_days AS integer)
       OR processing_status <> 'completed')
ORDER BY created_at DESC
LIMIT :max_events

-- name: load_summary
-- What the load left in the tables, for the report.
SELECT (SELECT count(*) FROM webhook_events)                                           AS events,
       (SELECT count(*) FROM webhook_events WHERE processing_status = 'failed')        AS failed_events,
       (SELECT count(*) FROM registrations)                                            AS registrations
