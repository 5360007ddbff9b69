-- The ledger of `python -m jobs migrate` (jobs/admin/migrate.py); the migrations themselves are
-- the files in migrations/ (numbered ones, and function files under functions/), each run as
-- one script.

-- name: lock
-- Serialise concurrent migrate runs (two containers starting at once): waits for the other.
SELECT pg_advisory_lock(:key)

-- name: unlock
-- Release the lock taken by lock on this same connection.
SELECT pg_advisory_unlock(:key)

-- name: create_ledger
-- The ledger: one row per applied file, with the checksum of what was applied last.
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: applied
-- Every migration applied so far, with its checksum.
SELECT name, checksum FROM schema_migrations

-- name: record_applied
-- Record a file as applied, in the same transaction as the file itself (a function file
-- applied again replaces its row).
INSERT INTO schema_migrations (name, checksum) VALUES (:name, :checksum)
ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()
