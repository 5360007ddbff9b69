-- name: claim_fire_time
-- Take this fire time of the job; no row back means another scheduler took it first.
INSERT INTO scheduled_runs (job, fire_time, host)
VALUES (:job, :fire_time, :host)
ON CONFLICT (job, fire_time) DO NOTHING
RETURNING job

-- name: forget_old_claims
-- Claims only matter around their fire time; a month of them is plenty to look back on.
DELETE FROM scheduled_runs WHERE job = :job AND fire_time < :before
