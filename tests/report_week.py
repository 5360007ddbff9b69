"""A hand-built week for the health report tests: every row written here, so the expected
numbers can be counted by eye (see WEEK below).

The period is Monday 16 to Monday 23 November 2026 (UTC), the week before 9 to 16.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from tests.factories import add_event, add_registration

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
    "categories": [{"category": "network", "failed": 2}, {"category": "validation", "failed": 1}],
    "discrepancies": 10,         # 9 auto-fixed + 1 sent to review
    "auto_fixed": 9,
    "open_items": 2,             # the week's completed_not_paid (critical) + an older amount_mismatch
    "events_archived": 40,
    "growth_bytes": 500_000,
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
        for i in range(3):
            _item(conn, dry, "paid_but_pending", "auto_fixed", "warning", START + timedelta(days=2), dry_run=True)

        # Cleanup archived 40 events in the week; health snapshots show 0.5 MB of growth.
        conn.execute(sa.text("""
            INSERT INTO cleanup_runs (status, trigger, pending_days, events_days, started_at, finished_at,
                                      events_archived, registrations_archived)
            VALUES ('completed', 'schedule', 7, 90, :at, :at, 40, 0)"""), {"at": START + timedelta(days=2)})
        for at, size in ((START + timedelta(hours=1), 10_000_000), (END - timedelta(hours=1), 10_500_000)):
            conn.execute(sa.text("""INSERT INTO database_health_snapshots (taken_at, database_size_bytes)
                                    VALUES (:at, :size)"""), {"at": at, "size": size})

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
