-- Health page figures read live, not from the snapshots.

-- name: database_size_now
-- The database's size in bytes now (pg_database_size: no snapshot needed).
SELECT pg_database_size(current_database()) AS database_size_bytes
