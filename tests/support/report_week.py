"""A hand-built week for the health report tests: every row written here, so the expected
numbers can be counted by eye (see WEEK below).

The period is Monday 16 to Monday 23 November 2026 (UTC), the week before 9 to 16.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from tests.support.factories import add_event, add_registration

END = datetime(2026, 11, 23, tzinfo=timezone.utc)
START = END - timedelta(days=7)
BEFORE = START - timedelta(days=7)
NOW = END + timedelta(hours=7)  # the Monday-morning run

# What the week holds, counted by hand.
WEEK = {
    "events_received": 12,       # 8 completed, 3 failed, 1 stuck processing
    "completed": 8,
    "failed": 3,
    "stuck": 1,
    "success_rate": 8 / 11,
    "events_before": 5,          # all completed
    "categories": [{"category": "network", "failed": 2, "retry_planned": 1, "needs_person": 1},
                   {"category": "validation", "failed": 1, "retry_planned": 0, "needs_person": 1}],
    "recovered": 1,
    "discrepancies": 10,         # 9 auto-fixed + 1 sent to review
    "auto_fixed": 9,
    "open_items": 2,             # the week's completed_not_paid (critical) + an older amount_mismatch
    "events_archived": 40,
    "growth_bytes": 500_000,
    "missed_found": 3,           # one replayed and recovered, one arrived late, one still missing
    "alerts_fired": 3,           # detected after 20 s, 40 s and 90 s; one still firing
}


def build_week(engine) -> None:
    """Write the week (and the one before) into an emptied database."""
    with engine.begin() as conn:
        # Events: 8 completed with 100..800 ms, 3 failed, 1 stuck, and 5 the week before.
        for i in range(8):
            add_event(conn, created_at=START + timedelta(hours=10 + 12 * i), duration_ms=100 * (i + 1),
                      event_type="checkout.session.completed" if i % 2 else "payment_intent.succeeded")
        add_event(conn, created_at=START + timedelta(days=2, hours=3), status="failed",
                  event_type="checkout.session.completed", error="connect timeout after 3012 ms to db-7",
                  error_category="network")
        add_event(conn, created_at=START + timedelta(days=4, hours=3), status="failed",
                  event_type="checkout.session.completed", error="connect timeout after 95 ms to db-7",
                  error_category="network")
        add_event(conn, created_at=START + timedelta(days=5), status="failed", event_type="charge.refunded",
                  error="<script>alert(1)</script> no registration for cs_test_a1B2c3D4e5",
                  error_category="validation")
        add_event(conn, created_at=START + timedelta(days=6), status="processing",
                  event_type="checkout.session.completed")
        for i in range(5):
            add_event(conn, created_at=BEFORE + timedelta(days=i, hours=9), duration_ms=50)
        # One network failure has its automatic retry planned; one completed event needed two
        # attempts (recovered).
        conn.execute(sa.text("""UPDATE webhook_events SET next_retry_at = created_at + interval '1 hour'
                                WHERE error_message = 'connect timeout after 95 ms to db-7'"""))
        conn.execute(sa.text("""UPDATE webhook_events SET attempts = 2
                                WHERE processing_status = 'completed' AND processing_duration_ms = 300"""))

        # Payments completed in the week: 3 x 25.00 EUR and 1 x 500 JPY.
        for i in range(3):
            add_registration(conn, created_at=START + timedelta(days=i), status="completed",
                             session_id=f"cs_test_week{i}", amount_total=2500, currency="eur",
                             completed_at=START + timedelta(days=i, minutes=2))
        add_registration(conn, created_at=START + timedelta(days=3), status="completed", session_id="cs_test_jpy",
                         amount_total=500, currency="jpy", completed_at=START + timedelta(days=3, minutes=1))

        # Reconciliation: one run in the week with 9 auto-fixed items and one for review; an
        # item still open from the week before; a dry run that must not count.
        run_id = _reconciliation_run(conn, START + timedelta(days=1), mismatches=10, auto_fixed=9, manual=1)
        for i in range(9):
            _item(conn, run_id, "paid_but_pending" if i < 6 else "expired_but_pending", "auto_fixed", "warning",
                  START + timedelta(days=1, minutes=i), resolved=True)
        _item(conn, run_id, "completed_not_paid", "manual_review", "critical", START + timedelta(days=1, hours=1),
              amount=4900, currency="usd")
        old_run = _reconciliation_run(conn, BEFORE + timedelta(days=1), mismatches=1, auto_fixed=0, manual=1)
        _item(conn, old_run, "amount_mismatch", "manual_review", "warning", BEFORE + timedelta(days=1),
              amount=2500, currency="eur")
        dry = _reconciliation_run(conn, START + timedelta(days=2), mismatches=3, auto_fixed=3, manual=0, dry_run=True)
        for _ in range(3):
            _item(conn, dry, "paid_but_pending", "auto_fixed", "warning", START + timedelta(days=2), dry_run=True)

        # Cleanup archived 40 events in the week; health snapshots show 0.5 MB of growth.
        conn.execute(sa.text("""
            INSERT INTO cleanup_runs (status, trigger, pending_days, events_days, started_at, finished_at,
                                      events_archived, registrations_archived)
            VALUES ('completed', 'schedule', 7, 90, :at, :at, 40, 0)"""), {"at": START + timedelta(days=2)})
        for at, size in ((START + timedelta(hours=1), 10_000_000), (END - timedelta(hours=1), 10_500_000)):
            conn.execute(sa.text("""INSERT INTO database_health_snapshots (taken_at, database_size_bytes)
                                    VALUES (:at, :size)"""), {"at": at, "size": size})

        # A sweep found 3 events Stripe sent that never arrived: one replayed and recovered, one
        # arrived late on its own, one (49.00 USD) still missing.
        sweep_id = conn.execute(sa.text("""
            INSERT INTO sweep_runs (status, trigger, lookback_hours, window_start, window_end, started_at,
                                    finished_at, stripe_events_found, missing_found)
            VALUES ('needs_review', 'schedule', 72, :at - interval '72 hours', :at, :at, :at, 40, 3)
            RETURNING id"""), {"at": START + timedelta(days=1)}).scalar_one()
        for i, (status, amount) in enumerate((("recovered", 2500), ("arrived", None), ("missing", 4900))):
            at = START + timedelta(days=1)
            conn.execute(sa.text("""
                INSERT INTO missed_events (stripe_event_id, event_type, stripe_created_at, status, found_at,
                    sweep_run_id, last_seen_at, amount, currency, retry_deadline, retention_deadline, payload,
                    replayed_at, recovered_at)
                VALUES (:id, 'checkout.session.completed', :created, :status, :at, :sweep, :at, :amount,
                        :currency, :created + interval '3 days', :created + interval '30 days', '{}'::jsonb,
                        :replayed, :recovered)"""),
                {"id": f"evt_missed_{i}", "created": at - timedelta(hours=5), "status": status, "at": at,
                 "sweep": sweep_id, "amount": amount, "currency": "usd" if amount == 4900 else "eur",
                 "replayed": at + timedelta(minutes=1) if status == "recovered" else None,
                 "recovered": at + timedelta(minutes=2) if status in ("recovered", "arrived") else None})

        # Alerts: a failed payment event (detected in 20 s, resolved in an hour), a failure rate
        # (40 s, 30 min) and the missed events (90 s, still firing).
        for rule, severity, started, detect_s, resolve in (
                ("payment_event_failed", "critical", START + timedelta(days=2, hours=3), 20, timedelta(hours=1)),
                ("failure_rate", "warning", START + timedelta(days=4), 40, timedelta(minutes=30)),
                ("missed_events", "critical", START + timedelta(days=1), 90, None)):
            fired = started + timedelta(seconds=detect_s)
            conn.execute(sa.text("""
                INSERT INTO alerts (rule, fingerprint, severity, status, summary, started_at, fired_at,
                                    resolved_at, last_seen_at)
                VALUES (:rule, :rule, :severity, :status, :rule, :started, :fired, :resolved, :fired)"""),
                {"rule": rule, "severity": severity, "status": "resolved" if resolve else "firing",
                 "started": started, "fired": fired, "resolved": fired + resolve if resolve else None})

        # Jobs: reconcile and health-snapshot fine, cleanup's last run failed.
        for job, status, at in (("reconcile", "completed", START + timedelta(days=6)),
                                ("health-snapshot", "completed", END - timedelta(hours=1)),
                                ("cleanup", "completed", START + timedelta(days=2)),
                                ("cleanup", "failed", START + timedelta(days=5))):
            conn.execute(sa.text("""INSERT INTO job_runs (job, status, trigger, started_at, finished_at,
                                                          duration_ms, error)
                                    VALUES (:job, :status, 'schedule', :at, :at, 1200, :error)"""),
                         {"job": job, "status": status, "at": at,
                          "error": "OperationalError: disk full" if status == "failed" else None})


def _reconciliation_run(conn, at, *, mismatches, auto_fixed, manual, dry_run=False) -> int:
    return conn.execute(sa.text("""
        INSERT INTO reconciliation_runs (status, trigger, lookback_days, dry_run, window_start, window_end,
            started_at, finished_at, mismatches_detected, auto_fixed_count, manual_review_needed)
        VALUES ('completed', 'schedule', 7, :dry, :at - interval '7 days', :at, :at, :at, :m, :a, :r)
        RETURNING id"""), {"dry": dry_run, "at": at, "m": mismatches, "a": auto_fixed, "r": manual}).scalar_one()


def _item(conn, run_id, kind, action, severity, at, *, resolved=False, dry_run=False, amount=None, currency=None):
    details = {"reason": "hand-built", "stripe": {"amount_total": amount, "currency": currency} if amount else None,
               "local": None}
    conn.execute(sa.text("""
        INSERT INTO reconciliation_items (run_id, kind, action, severity, dry_run, details, created_at, resolved_at)
        VALUES (:run, :kind, :action, :severity, :dry, CAST(:details AS jsonb), :at, :resolved)"""),
        {"run": run_id, "kind": kind, "action": action, "severity": severity, "dry": dry_run,
         "details": json.dumps(details), "at": at, "resolved": at if resolved else None})
