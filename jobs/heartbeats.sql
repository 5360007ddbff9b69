-- Heartbeats of the long-running processes (jobs/heartbeats.py): who watches the watcher.

-- name: beat
-- :process is alive at :now (a beat never moves back in time: a test's older now or a
-- second process with a slower clock leaves the newer beat). started_at is this run's
-- first beat: kept while beats follow each other, reset after a gap of :restart_after.
INSERT INTO monitor_heartbeats AS h (process, beat_at, host, started_at, details)
VALUES (:process, :now, :host, :now, CAST(:details AS jsonb))
ON CONFLICT (process) DO UPDATE
   SET beat_at = greatest(h.beat_at, excluded.beat_at),
       host = excluded.host,
       details = excluded.details,
       started_at = CASE WHEN h.beat_at < excluded.beat_at - CAST(:restart_after AS interval)
                         THEN excluded.started_at ELSE h.started_at END;

-- name: heartbeats
-- Every process's last beat.
SELECT process, beat_at, host, started_at, details
FROM monitor_heartbeats
ORDER BY process;
