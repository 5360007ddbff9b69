-- name: database_size
-- Bytes on disk of the whole database, every schema included.
SELECT pg_database_size(current_database()) AS bytes

-- name: table_sizes
-- Size with indexes and TOAST, and the planner's row estimate, of every table of the schema.
-- reltuples is -1 until the table has been vacuumed or analysed once: reported as null.
SELECT c.relname AS name,
       pg_total_relation_size(c.oid) AS total_bytes,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END AS row_estimate
FROM pg_class c
WHERE c.relnamespace = CAST(current_schema() AS regnamespace)
  AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
ORDER BY c.relname

-- name: oldest_rows
-- The oldest row each project table still keeps. The large tables have an index on the
-- column, so each min() reads one index entry; the small ones are scanned.
SELECT 'webhook_events' AS name, min(created_at) AS oldest_row_at FROM webhook_events
UNION ALL SELECT 'webhook_events_archive', min(created_at) FROM webhook_events_archive
UNION ALL SELECT 'registrations', min(created_at) FROM registrations
UNION ALL SELECT 'registrations_archive', min(created_at) FROM registrations_archive
UNION ALL SELECT 'reconciliation_runs', min(started_at) FROM reconciliation_runs
UNION ALL SELECT 'reconciliation_items', min(created_at) FROM reconciliation_items
UNION ALL SELECT 'cleanup_runs', min(started_at) FROM cleanup_runs
UNION ALL SELECT 'job_runs', min(started_at) FROM job_runs
UNION ALL SELECT 'database_health_snapshots', min(taken_at) FROM database_health_snapshots

-- name: insert_snapshot
-- Store one snapshot: the database's size and, per table, its size, row estimate and oldest
-- row (a JSON object by table name).
INSERT INTO database_health_snapshots (taken_at, trigger, database_size_bytes, tables)
VALUES (:taken_at, :trigger, :database_size_bytes, CAST(:tables AS jsonb))
RETURNING id
