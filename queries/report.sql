-- Weekly health report (jobs/health/report.py): period totals the dashboard pages had no
-- query for. Every other number of the report comes from the pages' own queries
-- (event_kpis, events_by_bucket, error_fingerprints, database_size_history, job_summary),
-- so the mail and the dashboard cannot disagree. All periods are [start, end).

-- name: failed_events_by_category
-- Events received in [start, end) that are failed now, per error_category (the classifier's
-- cause: network, database, stripe, validation, unknown; 'uncategorised' for failures
-- recorded without one), largest first: how many, how many have an automatic retry planned
-- (next_retry_at set by the error policy) and how many wait for a person (none planned).
SELECT coalesce(error_category, 'uncategorised')              AS category,
       count(*)                                               AS failed,
       count(*) FILTER (WHERE next_retry_at IS NOT NULL)      AS retry_planned,
       count(*) FILTER (WHERE next_retry_at IS NULL)          AS needs_person
FROM webhook_events
WHERE processing_status = 'failed' AND created_at >= :start AND created_at < :end
GROUP BY 1
ORDER BY failed DESC, category

-- name: reconciliation_period_summary
-- Reconciliation in [start, end), dry runs left out: runs started (finished ones), how many
-- failed, and the discrepancies first found in the period (items opened by a run then; an
-- item a later run sees again is not counted twice), how many of them reconciliation fixed
-- itself, and how many went to a person.
SELECT
    (SELECT count(*) FROM reconciliation_runs
      WHERE NOT dry_run AND status <> 'running' AND started_at >= :start AND started_at < :end) AS runs,
    (SELECT count(*) FROM reconciliation_runs
      WHERE NOT dry_run AND status = 'failed' AND started_at >= :start AND started_at < :end)  AS failed_runs,
    count(*)                                                  AS discrepancies,
    count(*) FILTER (WHERE action = 'auto_fixed')             AS auto_fixed,
    count(*) FILTER (WHERE action = 'manual_review')          AS manual_review
FROM reconciliation_items
WHERE NOT dry_run AND created_at >= :start AND created_at < :end

-- name: reconciliation_kinds_in_period
-- The discrepancies first found in [start, end) (dry runs left out) per kind: how many,
-- fixed automatically, sent to review, and of those still open at :end.
SELECT kind,
       count(*)                                                   AS items,
       count(*) FILTER (WHERE action = 'auto_fixed')              AS auto_fixed,
       count(*) FILTER (WHERE action = 'manual_review')           AS manual_review,
       count(*) FILTER (WHERE action = 'manual_review'
                          AND (resolved_at IS NULL OR resolved_at >= :end)) AS still_open
FROM reconciliation_items
WHERE NOT dry_run AND created_at >= :start AND created_at < :end
GROUP BY kind
ORDER BY items DESC, kind

-- name: review_queue_at
-- The manual review queue as it stood at :end (items opened before it and not resolved by
-- then): how many, how many critical, when the oldest was opened; and how many items people
-- resolved in [start, end).
SELECT count(*) FILTER (WHERE created_at < :end AND (resolved_at IS NULL OR resolved_at >= :end))
                                                                          AS open_items,
       count(*) FILTER (WHERE created_at < :end AND (resolved_at IS NULL OR resolved_at >= :end)
                          AND severity = 'critical')                      AS open_critical,
       min(created_at) FILTER (WHERE created_at < :end AND (resolved_at IS NULL OR resolved_at >= :end))
                                                                          AS oldest_open_at,
       count(*) FILTER (WHERE resolved_at >= :start AND resolved_at < :end) AS resolved_in_period
FROM reconciliation_items
WHERE action = 'manual_review' AND NOT dry_run

-- name: review_amounts_at
-- Money waiting in the review queue at :end, per currency, in Stripe's minor units: the
-- amount Stripe reported for the session, else the local registration's.
SELECT lower(coalesce(details -> 'stripe' ->> 'currency', details -> 'local' ->> 'currency')) AS currency,
       count(*)                                                                              AS items,
       sum(CAST(coalesce(details -> 'stripe' ->> 'amount_total',
                         details -> 'local' ->> 'amount_total') AS bigint))                 AS amount_total
FROM reconciliation_items
WHERE action = 'manual_review' AND NOT dry_run
  AND created_at < :end AND (resolved_at IS NULL OR resolved_at >= :end)
  AND coalesce(details -> 'stripe' ->> 'amount_total', details -> 'local' ->> 'amount_total') IS NOT NULL
GROUP BY 1
ORDER BY 1

-- name: completed_payments_by_currency
-- Registrations completed in [start, end) (by completed_at), per currency: how many and
-- the amount in Stripe's minor units (null when none of them has an amount). Whole hours
-- from the registration rollups, the partial edge hours from the rows
-- (registration_payment_window, migrations/functions/registration_rollups.sql).
SELECT nullif(currency, '')                                              AS currency,
       registrations,
       CASE WHEN amounts > 0 THEN amount_total END                       AS amount_total
FROM registration_payment_window(:start, :end)
ORDER BY 1

-- name: cleanup_period_summary
-- Cleanup runs started in [start, end), dry runs left out: runs, failed runs, and the rows
-- they moved to the archive tables.
SELECT count(*)                                              AS runs,
       count(*) FILTER (WHERE status = 'failed')             AS failed_runs,
       coalesce(sum(events_archived), 0)                     AS events_archived,
       coalesce(sum(registrations_archived), 0)              AS registrations_archived
FROM cleanup_runs
WHERE NOT dry_run AND status <> 'running' AND started_at >= :start AND started_at < :end

-- name: health_report_list
-- Past health reports, newest first, at most :limit (the Health page's list).
SELECT id, period_start, period_end, created_at, trigger, status, subject, recipients,
       attempts, sent_at, error
FROM health_reports
ORDER BY created_at DESC, id DESC
LIMIT :limit

-- name: health_report_content
-- One report's HTML and text as they were mailed.
SELECT id, period_start, period_end, status, subject, html, text
FROM health_reports
WHERE id = :report_id

-- name: missed_events_period_summary
-- Sweeps started in [start, end) (dry runs left out: runs, failed runs) and the events Stripe
-- sent that a sweep first found missing in the period: how many, how many were replayed,
-- how many are recovered by now (replayed successfully, or arrived late on their own) and
-- how many are still missing.
SELECT
    (SELECT count(*) FROM sweep_runs
      WHERE NOT dry_run AND status <> 'running' AND started_at >= :start AND started_at < :end) AS sweeps,
    (SELECT count(*) FROM sweep_runs
      WHERE NOT dry_run AND status = 'failed' AND started_at >= :start AND started_at < :end)  AS failed_sweeps,
    count(*)                                                        AS found,
    count(*) FILTER (WHERE replayed_at IS NOT NULL)                 AS replayed,
    count(*) FILTER (WHERE status IN ('recovered', 'arrived'))      AS recovered,
    count(*) FILTER (WHERE status IN ('missing', 'replayed'))       AS still_missing
FROM missed_events
WHERE found_at >= :start AND found_at < :end

-- name: alerts_by_rule_in_period
-- Alerts fired in [start, end) per rule: how many, how many critical, how many are resolved
-- and still firing now, the median time to detect (fired - started: from the condition's
-- start, e.g. the failed delivery's commit, to the alert) and the median time to resolve
-- (resolved - fired) of the resolved ones, in seconds. Most alerts first.
SELECT rule,
       count(*)                                                   AS fired,
       count(*) FILTER (WHERE severity = 'critical')              AS critical,
       count(*) FILTER (WHERE status = 'resolved')                AS resolved,
       count(*) FILTER (WHERE status = 'firing')                  AS still_firing,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - started_at)) AS median_detect_s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - fired_at))
           FILTER (WHERE status = 'resolved')                     AS median_resolve_s
FROM alerts
WHERE fired_at >= :start AND fired_at < :end
GROUP BY rule
ORDER BY fired DESC, rule
