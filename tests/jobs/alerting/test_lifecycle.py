"""The alert life cycle on the real database: each rule fires on its scenario and resolves,
holds before firing where it should, and queues one notification per channel per incident."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from core.settings import get_settings
from jobs.alerting import lifecycle
from jobs.alerting.rules import RULES
from tests.support.factories import add_event

CHANNELS = ["webhook", "slack"]


def evaluate(engine, now, **overrides):
    return lifecycle.evaluate(engine, now=now, settings=get_settings(**overrides), channels=CHANNELS)


def alerts(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text("SELECT * FROM alerts ORDER BY id")).mappings()]


def notifications(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT alert_id, channel, kind, sequence FROM alert_notifications ORDER BY id"))]


def set_status(engine, event_ids, status):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE webhook_events SET processing_status = :s WHERE stripe_event_id = ANY(:ids)"),
                     {"s": status, "ids": list(event_ids)})


def now_utc():
    return datetime.now(timezone.utc)


def test_rules_are_registered_under_the_contract_names():
    assert set(RULES) <= {"payment_event_failed", "failure_rate", "silence", "stuck_events",
                          "missed_events", "review_needed", "job_failed", "endpoint_disabled",
                          "endpoint_misconfigured"}
    assert {"payment_event_failed", "failure_rate", "silence", "stuck_events", "review_needed",
            "job_failed"} <= set(RULES)


def test_every_rule_name_is_accepted_by_the_alerts_table(db):
    now = now_utc()
    with db.begin() as conn:
        for name in RULES:
            conn.execute(sa.text("""INSERT INTO alerts (rule, fingerprint, severity, summary, started_at, fired_at,
                                    last_seen_at) VALUES (:r, :r, 'warning', 's', :n, :n, :n)"""), {"r": name, "n": now})


def test_failed_payment_event_fires_at_once_and_resolves_when_completed(db):
    now = now_utc()
    with db.begin() as conn:
        failed = add_event(conn, created_at=now - timedelta(seconds=5), status="failed", error="boom")
        add_event(conn, created_at=now - timedelta(seconds=5), status="failed", event_type="charge.refunded")
    report = evaluate(db, now)
    assert [a["fingerprint"] for a in report.fired] == ["payment_event_failed:checkout.session.completed"]
    [alert] = alerts(db)
    assert alert["severity"] == "critical" and alert["status"] == "firing"
    assert alert["started_at"] <= alert["fired_at"] == now
    assert sorted(n[1:] for n in notifications(db)) == [("slack", "firing", 0), ("webhook", "firing", 0)]

    # Still failing: nothing new.
    assert evaluate(db, now + timedelta(seconds=10)).queued == 0
    set_status(db, [failed], "completed")
    report = evaluate(db, now + timedelta(seconds=20))
    assert [r["id"] for r in report.resolved] == [alert["id"]]
    [alert] = alerts(db)
    assert alert["status"] == "resolved" and alert["resolved_at"] == now + timedelta(seconds=20)
    assert sorted(n[1:] for n in notifications(db) if n[2] == "resolved") == [
        ("slack", "resolved", 0), ("webhook", "resolved", 0)]


def test_a_burst_of_100_failures_is_one_alert_and_one_notification_per_channel(db):
    now = now_utc()
    with db.begin() as conn:
        for i in range(100):
            add_event(conn, created_at=now - timedelta(seconds=30) + timedelta(milliseconds=i), status="failed")
    evaluate(db, now)
    evaluate(db, now + timedelta(seconds=10))
    [alert] = alerts(db)
    assert alert["details"]["failed"] == 100
    assert sorted(n[1:] for n in notifications(db)) == [("slack", "firing", 0), ("webhook", "firing", 0)]


def failing_window(engine, now, failed, total, event_type="charge.succeeded"):
    ids = []
    with engine.begin() as conn:
        for i in range(total):
            ids.append(add_event(conn, created_at=now - timedelta(seconds=60 + i), event_type=event_type,
                                 status="failed" if i < failed else "completed"))
    return ids[:failed]


def test_failure_rate_holds_before_firing_and_a_blip_shorter_than_the_hold_sends_nothing(db):
    now = now_utc()
    failed = failing_window(db, now, failed=10, total=40)  # 25 %: critical
    report = evaluate(db, now)
    assert report.pending == ["failure_rate"] and report.fired == []
    # Stripe's retry succeeds within the hold: the condition clears, nothing fired or queued.
    set_status(db, failed, "completed")
    report = evaluate(db, now + timedelta(seconds=60))
    assert report.pending == [] and alerts(db) == [] and notifications(db) == []
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alert_pending")).scalar() == 0


def test_failure_rate_fires_after_the_hold_with_its_severity_and_resolves(db):
    now = now_utc()
    failed = failing_window(db, now, failed=3, total=30)  # 10 %: warning
    evaluate(db, now, MONITOR_ALERT_FAILURE_HOLD_S=60)
    report = evaluate(db, now + timedelta(seconds=61), MONITOR_ALERT_FAILURE_HOLD_S=60)
    assert [a["rule"] for a in report.fired] == ["failure_rate"]
    [alert] = alerts(db)
    assert alert["severity"] == "warning" and alert["details"]["failed"] == 3
    set_status(db, failed, "completed")
    report = evaluate(db, now + timedelta(seconds=90), MONITOR_ALERT_FAILURE_HOLD_S=60)
    assert [r["rule"] for r in report.resolved] == ["failure_rate"]


def test_failure_rate_needs_enough_events(db):
    now = now_utc()
    failing_window(db, now, failed=5, total=10)
    report = evaluate(db, now, MONITOR_ALERT_FAILURE_HOLD_S=0)
    assert report.fired == [] and report.pending == []


def test_silence_fires_after_steady_traffic_stops_and_resolves_on_the_next_event(db):
    last = now_utc() - timedelta(hours=2)
    with db.begin() as conn:
        for i in range(100):  # one event every ~14 min over the day before
            add_event(conn, created_at=last - timedelta(minutes=14 * i), event_type="charge.succeeded")
    # 10 x 14 min = 140 min: not yet silent after 2 h.
    assert evaluate(db, last + timedelta(hours=2)).fired == []
    report = evaluate(db, last + timedelta(hours=3))
    assert [a["rule"] for a in report.fired] == ["silence"]
    [alert] = alerts(db)
    assert alert["severity"] == "critical" and alert["started_at"] == last + timedelta(minutes=144)
    with db.begin() as conn:
        add_event(conn, created_at=last + timedelta(hours=3, minutes=1), event_type="charge.succeeded")
    report = evaluate(db, last + timedelta(hours=3, minutes=2))
    assert [r["rule"] for r in report.resolved] == ["silence"]


def test_silence_needs_steady_traffic_first(db):
    last = now_utc() - timedelta(days=1)
    with db.begin() as conn:
        for i in range(10):
            add_event(conn, created_at=last - timedelta(minutes=i), event_type="charge.succeeded")
    assert evaluate(db, now_utc()).fired == []


def test_stuck_events_fire_after_the_stuck_minutes_and_resolve_when_finished(db):
    now = now_utc()
    with db.begin() as conn:
        stuck = add_event(conn, created_at=now - timedelta(minutes=20), status="processing",
                          event_type="charge.succeeded")
        add_event(conn, created_at=now - timedelta(minutes=5), status="processing", event_type="charge.succeeded")
    report = evaluate(db, now, MONITOR_STUCK_MINUTES=15)
    assert [a["rule"] for a in report.fired] == ["stuck_events"]
    assert alerts(db)[0]["details"]["stuck"] == 1 and alerts(db)[0]["severity"] == "warning"
    set_status(db, [stuck], "completed")
    assert [r["rule"] for r in evaluate(db, now + timedelta(minutes=1), MONITOR_STUCK_MINUTES=15).resolved] \
        == ["stuck_events"]


def add_review_item(engine, kind, now):
    with engine.begin() as conn:
        run_id = conn.execute(sa.text("""
            INSERT INTO reconciliation_runs (lookback_days, window_start, window_end, started_at)
            VALUES (7, :n, :n, :n) RETURNING id"""), {"n": now}).scalar()
        return conn.execute(sa.text("""
            INSERT INTO reconciliation_items (run_id, kind, action, severity, created_at)
            VALUES (:run, :kind, 'manual_review', 'warning', :n) RETURNING id"""),
            {"run": run_id, "kind": kind, "n": now}).scalar()


def test_review_needed_is_critical_for_completed_not_paid_and_resolves_when_resolved(db):
    now = now_utc()
    add_review_item(db, "paid_but_failed", now)
    item = add_review_item(db, "completed_not_paid", now)
    report = evaluate(db, now)
    assert sorted((a["fingerprint"], a["severity"]) for a in report.fired) == [
        ("review_needed:critical", "critical"), ("review_needed:warning", "warning")]
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE reconciliation_items SET resolved_at = :n WHERE id = :id"), {"n": now, "id": item})
    report = evaluate(db, now + timedelta(minutes=1))
    assert [r["fingerprint"] for r in report.resolved] == ["review_needed:critical"]


def add_job_run(engine, job, status, started, trigger="cli"):
    with engine.begin() as conn:
        conn.execute(sa.text("""INSERT INTO job_runs (job, status, trigger, started_at, finished_at, error)
                                VALUES (:job, :status, :trigger, :s, :s, :error)"""),
                     {"job": job, "status": status, "trigger": trigger, "s": started,
                      "error": "boom" if status == "failed" else None})


def test_job_failed_fires_on_a_failed_last_run_and_resolves_on_success(db):
    now = now_utc()
    add_job_run(db, "cleanup", "completed", now - timedelta(hours=2))
    add_job_run(db, "cleanup", "failed", now - timedelta(hours=1))
    report = evaluate(db, now)
    assert [a["fingerprint"] for a in report.fired] == ["job_failed:cleanup"]
    assert "boom" in report.fired[0]["summary"]
    add_job_run(db, "cleanup", "completed", now - timedelta(minutes=1))
    assert [r["fingerprint"] for r in evaluate(db, now).resolved] == ["job_failed:cleanup"]


def test_job_failed_fires_when_a_scheduled_job_missed_its_time(db):
    # reconcile is scheduled daily at 03:00; the scheduler ran it yesterday, not today.
    now = datetime(2026, 11, 30, 4, 0, tzinfo=timezone.utc)
    add_job_run(db, "reconcile", "completed", datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc), trigger="schedule")
    report = evaluate(db, now, MONITOR_SCHEDULE="reconcile=0 3 * * *", MONITOR_ALERT_JOB_GRACE_MINUTES=30)
    assert [a["fingerprint"] for a in report.fired] == ["job_failed:reconcile"]
    assert "due at 2026-11-30 03:00" in report.fired[0]["summary"]
    # Within the grace it is not missed yet; and a run since clears it.
    add_job_run(db, "reconcile", "completed", datetime(2026, 11, 30, 4, 1, tzinfo=timezone.utc), trigger="schedule")
    report = evaluate(db, now + timedelta(minutes=2), MONITOR_SCHEDULE="reconcile=0 3 * * *")
    assert [r["fingerprint"] for r in report.resolved] == ["job_failed:reconcile"]


def test_reminders_at_most_every_few_hours_not_when_acknowledged(db):
    now = now_utc()
    with db.begin() as conn:
        add_event(conn, created_at=now, status="failed")
    evaluate(db, now)
    evaluate(db, now + timedelta(hours=1))
    assert [n[2] for n in notifications(db)] == ["firing", "firing"]
    evaluate(db, now + timedelta(hours=4, seconds=1))
    assert [n[2:] for n in notifications(db)][2:] == [("reminder", 1), ("reminder", 1)]
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE alerts SET acknowledged_at = :n, acknowledged_by = 'ops'"), {"n": now})
    evaluate(db, now + timedelta(hours=9))
    assert len(notifications(db)) == 4


def test_a_silenced_fingerprint_notifies_nothing_until_the_silence_ends(db):
    now = now_utc()
    with db.begin() as conn:
        conn.execute(sa.text("""INSERT INTO alert_silences (fingerprint, until, created_by, created_at)
                                VALUES ('payment_event_failed:checkout.session.completed', :u, 'ops', :n)"""),
                     {"u": now + timedelta(hours=1), "n": now})
        add_event(conn, created_at=now, status="failed")
    assert [a["rule"] for a in evaluate(db, now).fired] == ["payment_event_failed"]
    assert notifications(db) == []
    evaluate(db, now + timedelta(hours=1, seconds=1))
    assert sorted(n[1:3] for n in notifications(db)) == [("slack", "firing"), ("webhook", "firing")]


def test_a_broken_rule_is_reported_and_the_others_still_run(db):
    from jobs.alerting.rules import Rule

    broken = Rule("stuck_events", lambda rows, **kw: 1 / 0, lambda s, now: {"stuck_before": now}, "events")
    now = now_utc()
    with db.begin() as conn:
        add_event(conn, created_at=now, status="failed")
    report = lifecycle.evaluate(db, now=now, settings=get_settings(), channels=CHANNELS,
                                rules={"stuck_events": broken, "payment_event_failed": RULES["payment_event_failed"]})
    assert "ZeroDivisionError" in report.errors["stuck_events"]
    assert [a["rule"] for a in report.fired] == ["payment_event_failed"]


def test_a_rule_whose_query_fails_in_the_database_spoils_nothing_else(db):
    from jobs.alerting.rules import Rule

    # The database refuses the parameter: the rule's savepoint is rolled back, the rest goes on.
    broken = Rule("stuck_events", RULES["stuck_events"].evaluate, lambda s, now: {"stuck_before": "not a time"},
                  "events")
    now = now_utc()
    with db.begin() as conn:
        add_event(conn, created_at=now, status="failed")
    report = lifecycle.evaluate(db, now=now, settings=get_settings(), channels=CHANNELS,
                                rules={"stuck_events": broken, "payment_event_failed": RULES["payment_event_failed"]})
    assert "stuck_events" in report.errors
    assert [a["rule"] for a in report.fired] == ["payment_event_failed"]
    assert len(notifications(db)) == 2
