-- name: read_write_transaction
-- The dashboard's sessions default to read-only; the throttle's one call writes (only
-- through the SECURITY DEFINER functions of migrations/functions/login_throttle.sql).
SET TRANSACTION READ WRITE

-- name: take_turn
-- Seconds to wait before this client may try a password (0 = go; the try is counted).
SELECT login_throttle_take(:client, :account, CAST(:now AS timestamptz),
                           CAST(:client_free AS integer), CAST(:client_first_wait_s AS double precision),
                           CAST(:client_max_wait_s AS double precision), CAST(:account_free AS integer),
                           CAST(:account_interval_s AS double precision),
                           CAST(:forget_after_s AS double precision)) AS wait_s

-- name: succeeded
-- The right password: this client and the account start afresh.
SELECT login_throttle_succeeded(:client, :account)
