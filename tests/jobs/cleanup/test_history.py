"""Cleanup removes the monitor's own history older than the retention (90 days): job runs
(each job's last run and last success stay), sent or abandoned alert notifications, and
sweep runs no missed event points to."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from jobs.cleanup import command as cleanup

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
OLD, RECENT = NOW - timedelta(days=120), NOW - timedelta(days=10)


def insert(conn, sql: str, **params) -> int:
    return conn.execute(sa.text(sql), params).scalar()


def job_run(conn, job: str, status: str, at: datetime) -> int:
    return insert(conn, "INSERT INTO job_runs (job, trigger, status, started_at, finished_at)"
                        " VALUES (:job, 'schedule', :status, :at, :at) RETURNING id", job=job, status=status, at=at)


def sweep_run(conn, at: datetime, job_run_id: int | None = None) -> int:
    return insert(conn, "INSERT INTO sweep_runs (status, lookback_hours, window_start, window_end, started_at,"
                        " job_run_id) VALUES ('completed', 1, :at, :at, :at, :job) RETURNING id", at=at, job=job_run_id)


def ids(conn, table: str) -> set[int]:
    return set(conn.execute(sa.text(f"SELECT id FROM {table}")).scalars())


def test_old_history_goes_and_what_rules_and_records_need_stays(db):
    with db.begin() as conn:
        old_retry = [job_run(conn, "retry", "completed", OLD + timedelta(minutes=n)) for n in range(5)]
        last_retry = job_run(conn, "retry", "completed", RECENT)
        last_success = job_run(conn, "reconcile", "completed", OLD)  # its last success: kept
        last_reconcile = job_run(conn, "reconcile", "failed", OLD + timedelta(days=1))  # its last run: kept
        swept_job = job_run(conn, "sweep", "completed", OLD)
        plain_sweep = sweep_run(conn, OLD)
        finding_sweep = sweep_run(conn, OLD, swept_job)
        recent_sweep = sweep_run(conn, RECENT)
        conn.execute(sa.text(
            "INSERT INTO missed_events (stripe_event_id, event_type, stripe_created_at, found_at, sweep_run_id,"
            " last_seen_at, retry_deadline, retention_deadline, payload) VALUES ('evt_1', 'checkout.session.completed',"
            " :at, :at, :sweep, :at, :at, :at, '{}')"), {"at": OLD, "sweep": finding_sweep})
        alert = insert(conn, "INSERT INTO alerts (rule, fingerprint, severity, status, summary, started_at, fired_at,"
                             " last_seen_at, resolved_at) VALUES ('silence', 'silence', 'critical', 'resolved', 's',"
                             " :at, :at, :at, :at) RETURNING id", at=OLD)
        notes = {}
        for name, status, created, next_attempt in (("old_sent", "sent", OLD, None),
                                                    ("old_given_up", "failed", OLD, None),
                                                    ("old_retrying", "failed", OLD, NOW),
                                                    ("recent_sent", "sent", RECENT, None)):
            notes[name] = insert(conn, "INSERT INTO alert_notifications (alert_id, channel, kind, sequence, status,"
                                       " created_at, next_attempt_at) VALUES (:alert, 'webhook', 'firing', :seq,"
                                       " :status, :created, :next) RETURNING id", alert=alert, seq=len(notes),
                                 status=status, created=created, next=next_attempt)

    dry = cleanup.run(db, now=NOW, skip_registrations=True, dry_run=True)
    assert dry.history_pruned == {"alert_notifications": 2, "sweep_runs": 1, "job_runs": 5}
    assert any("history older than 90 days" in line for line in dry.summary_lines())

    report = cleanup.run(db, now=NOW, skip_registrations=True)
    assert report.history_pruned == {"alert_notifications": 2, "sweep_runs": 1, "job_runs": 5}
    with db.connect() as conn:
        kept_runs = ids(conn, "job_runs")
        assert not kept_runs & set(old_retry)
        assert {last_retry, last_success, last_reconcile, swept_job} <= kept_runs
        assert ids(conn, "sweep_runs") == {finding_sweep, recent_sweep} and plain_sweep not in ids(conn, "sweep_runs")
        assert ids(conn, "alert_notifications") == {notes["old_retrying"], notes["recent_sent"]}
        assert ids(conn, "alerts") == {alert}
