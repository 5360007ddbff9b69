-- Health page: database growth (database_health_snapshots), job history (job_runs) and
-- cleanup runs (cleanup_runs).

-- name: database_size_history
-- The last snapshot of each bucket (:bucket 'hour' or 'day', UTC) in [start, end).
SELECT DISTINCT ON (date_trunc(:bucket, taken_at, 'UTC'))
       taken_at, database_size_bytes
FROM database_health_snapshots
WHERE taken_at >= :start AND taken_at < :end
ORDER BY date_trunc(:bucket, taken_at, 'UTC'), taken_at DESC

-- name: table_growth
-- Each table's size and row estimate at the last snapshot of each bucket in [start, end).
WITH picked AS (
    SELECT DISTINCT ON (date_trunc(:bucket, taken_at, 'UTC')) taken_at, tables
    FROM database_health_snapshots
    WHERE taken_at >= :start AND taken_at < :end
    ORDER BY date_trunc(:bucket, taken_at, 'UTC'), taken_at DESC
)
SELECT p.taken_at,
       t.key                                            AS table_name,
       CAST(t.value ->> 'total_bytes' AS bigint)        AS total_bytes,
       CAST(t.value ->> 'row_estimate' AS bigint)       AS row_estimate
FROM picked p, jsonb_each(p.tables) AS t
ORDER BY p.taken_at, t.key

-- name: latest_tables
-- Every table as the latest snapshot saw it, largest first.
WITH latest AS (
    SELECT taken_at, database_size_bytes, tables
    FROM database_health_snapshots
    ORDER BY taken_at DESC
    LIMIT 1
)
SELECT l.taken_at,
       l.database_size_bytes,
       t.key                                                     AS table_name,
       CAST(t.value ->> 'total_bytes' AS bigint)                 AS total_bytes,
       CAST(t.value ->> 'row_estimate' AS bigint)                AS row_estimate,
       CAST(t.value ->> 'oldest_row_at' AS timestamptz)          AS oldest_row_at
FROM latest l, jsonb_each(l.tables) AS t
ORDER BY CAST(t.value ->> 'total_bytes' AS bigint) DESC, t.key

-- name: job_summary
-- One row per job ever run: its latest run, last success, last failure, and how many runs
-- and failures it had since :since.
SELECT job,
       max(started_at)                                                       AS last_run_at,
       (array_agg(status ORDER BY started_at DESC, id DESC))[1]              AS last_status,
       (array_agg(trigger ORDER BY started_at DESC, id DESC))[1]             AS last_trigger,
       (array_agg(duration_ms ORDER BY started_at DESC, id DESC))[1]         AS last_duration_ms,
       max(started_at) FILTER (WHERE status IN ('completed', 'needs_review')) AS last_success_at,
       max(started_at) FILTER (WHERE status = 'failed')                      AS last_failure_at,
       (array_agg(error ORDER BY started_at DESC, id DESC)
            FILTER (WHERE status = 'failed'))[1]                             AS last_error,
       count(*) FILTER (WHERE started_at >= :since)                          AS runs,
       count(*) FILTER (WHERE started_at >= :since AND status = 'failed')    AS failures,
       CAST(avg(duration_ms) FILTER (WHERE started_at >= :since
                                     AND status IN ('completed', 'needs_review')) AS bigint)
                                                                             AS avg_duration_ms
FROM job_runs
GROUP BY job
ORDER BY job

-- name: job_history
-- Runs started in [start, end), newest first, at most :limit; :job null means every job.
SELECT id, job, status, trigger, started_at, finished_at, duration_ms, host, error, summary
FROM job_runs
WHERE started_at >= :start AND started_at < :end
  AND (CAST(:job AS text) IS NULL OR job = CAST(:job AS text))
ORDER BY started_at DESC, id DESC
LIMIT :limit

-- name: cleanup_history
-- The latest cleanup runs, dry runs included, newest first.
SELECT id, status, trigger, dry_run, started_at, duration_ms, pending_days, events_days,
       events_matched, events_archived, event_batches, events_kept_failed,
       stale_pending_found, registrations_archived, registrations_kept_paid,
       registrations_kept_open, registrations_unchecked, registrations_fixed,
       registrations_queued, reconciliation_run_id, registrations_skipped, details, error
FROM cleanup_runs
ORDER BY started_at DESC, id DESC
LIMIT :limit

-- name: recently_archived_registrations
-- Stale pending registrations cleanup removed most recently, with Stripe's answer.
SELECT CAST(id AS text) AS id, email, amount_total, currency, created_at, archived_at, archive_reason,
       stripe_checkout_session_id, stripe_session_status, stripe_payment_status, cleanup_run_id
FROM registrations_archive
ORDER BY archived_at DESC, created_at DESC, id DESC
LIMIT :limit

-- name: cleanup_running_run
-- The newest cleanup run still marked running, with the counts it has saved so far (events
-- first, then registrations). A row left 'running' by a killed process is told apart by the
-- job's advisory lock (jobs.runtime.job_is_running).
SELECT id, trigger, dry_run, started_at, events_matched, events_archived, event_batches,
       stale_pending_found, registrations_archived, registrations_kept_paid, registrations_skipped
FROM cleanup_runs
WHERE status = 'running'
ORDER BY started_at DESC, id DESC
LIMIT 1

-- name: stripe_webhook_endpoints
-- Stripe's webhook endpoints as the last sweep listed them: the app's first, each with what
-- is wrong with it (disabled, event types it misses, another API version).
SELECT url, status, watched AS app_endpoint, api_version,
       array_to_string(missing_events, ', ') AS missing_events,
       api_version_mismatch, disabled_since, seen_at, stripe_endpoint_id
FROM stripe_webhook_endpoints
ORDER BY watched DESC, url, stripe_endpoint_id;
