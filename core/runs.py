"""What starts a job, declared once: the ``trigger`` column of ``job_runs``,
``reconciliation_runs``, ``cleanup_runs`` and ``database_health_snapshots`` accepts exactly
these values (CHECK constraints, tested against this list)."""

from __future__ import annotations

TRIGGERS = (
    "cli",        # python -m jobs ... by a person or a cron line
    "dashboard",  # a button on the dashboard
    "schedule",   # python -m jobs schedule
    "cleanup",    # work cleanup started itself (reconciling paid stale registrations, its health snapshot)
)
