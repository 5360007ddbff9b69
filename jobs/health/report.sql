-- name: insert_report
-- Record a report as built, before any send, so a crash mid-send still leaves it on record.
INSERT INTO health_reports (period_start, period_end, created_at, trigger, status, subject, recipients,
                            html, text, data, error, job_run_id)
VALUES (:period_start, :period_end, :created_at, :trigger, :status, :subject, CAST(:recipients AS text[]),
        :html, :text, CAST(:data AS jsonb), :error, :job_run_id)
RETURNING id

-- name: claim_for_sending
-- Mark a report as being sent (one more attempt) and return what to send. Only one
-- health-report run holds the job's lock, so a row still 'sending' here was left by a run
-- that died mid-send.
UPDATE health_reports
SET status = 'sending', attempts = attempts + 1, last_attempt_at = :now
WHERE id = :report_id AND status IN ('sending', 'failed')
RETURNING id, subject, recipients, html, text, attempts

-- name: mark_sent
-- The server took the message; ``error`` lists recipients it refused, if any.
UPDATE health_reports
SET status = 'sent', sent_at = :now, error = :error
WHERE id = :report_id

-- name: mark_failed
-- Not sent: kept as 'failed' for the next run to retry.
UPDATE health_reports
SET status = 'failed', error = :error
WHERE id = :report_id

-- name: reports_to_retry
-- Reports whose send failed (or whose run died mid-send), oldest first: recent enough to
-- still be worth reading and not yet given up on (at most :max_attempts tries).
SELECT id
FROM health_reports
WHERE status IN ('failed', 'sending') AND attempts < :max_attempts AND period_end >= :not_before
ORDER BY created_at, id
