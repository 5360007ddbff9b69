-- Scheduled fire times already taken. Several schedulers may run (one per machine, for
-- availability): the one that inserts (job, fire_time) first runs the job, the others skip
-- it, so a quick job is not run twice in a row either. The advisory lock each job holds
-- still keeps any two runs from overlapping.
CREATE TABLE IF NOT EXISTS scheduled_runs (
    job        text NOT NULL,
    fire_time  timestamptz NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    host       text,
    PRIMARY KEY (job, fire_time)
);

ALTER TABLE scheduled_runs ENABLE ROW LEVEL SECURITY;
