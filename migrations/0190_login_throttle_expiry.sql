-- The login throttle forgets: rows whose last failure is older than the throttle's memory
-- (and whose wait is over) are deleted as attempts come in (migrations/functions/login_throttle.sql), so addresses
-- that tried once do not pile up rows for ever. This index finds them.
CREATE INDEX IF NOT EXISTS login_throttle_last_failure_idx ON login_throttle (last_failure_at);
