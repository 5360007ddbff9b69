"""The database's CHECKs and foreign keys against the lists the code declares once."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from core.checkout import MISMATCH_ACTIONS, MISMATCH_KINDS, SEVERITIES
from core.runs import TRIGGERS
from jobs.cleanup.decisions import ARCHIVE_REASONS

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def check_values(engine, table: str, column: str) -> set[str]:
    """The values a CHECK (column IN (...)) of the table allows, read from the catalog."""
    with engine.connect() as conn:
        definitions = conn.execute(sa.text("""
            SELECT pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = CAST(:table AS regclass) AND contype = 'c'"""), {"table": table}).scalars().all()
    found = [d for d in definitions if re.search(rf"\b{column}\b", d) and "ANY" in d]
    assert len(found) == 1, (table, column, definitions)
    return set(re.findall(r"'([^']*)'::text", found[0]))


RUN_TABLES = ["job_runs", "reconciliation_runs", "cleanup_runs", "database_health_snapshots", "health_reports",
              "sweep_runs"]


@pytest.mark.parametrize("table", RUN_TABLES)
def test_every_run_table_accepts_exactly_the_declared_triggers(engine, table):
    assert check_values(engine, table, "trigger") == set(TRIGGERS)
    assert "test" not in TRIGGERS


def test_every_table_with_a_trigger_column_accepts_only_declared_triggers(engine):
    with engine.connect() as conn:
        tables = set(conn.execute(sa.text("""
            SELECT table_name FROM information_schema.columns
            WHERE table_schema = 'public' AND column_name = 'trigger'""")).scalars())
    assert set(RUN_TABLES) <= tables
    for table in sorted(tables):
        assert check_values(engine, table, "trigger") <= set(TRIGGERS), table


@pytest.mark.parametrize("column, declared", [
    ("kind", set(MISMATCH_KINDS)),
    ("action", set(MISMATCH_ACTIONS)),
    ("severity", set(SEVERITIES)),
])
def test_reconciliation_items_accept_exactly_the_declared_kinds(engine, column, declared):
    assert check_values(engine, "reconciliation_items", column) == declared


def test_mismatch_kinds_use_only_declared_actions_and_severities():
    assert {action for action, _ in MISMATCH_KINDS.values()} == set(MISMATCH_ACTIONS)
    assert {severity for _, severity in MISMATCH_KINDS.values()} <= set(SEVERITIES)


def test_registrations_archive_accepts_exactly_the_declared_reasons(engine):
    assert check_values(engine, "registrations_archive", "archive_reason") == set(ARCHIVE_REASONS)


def test_a_test_trigger_is_refused(db):
    with pytest.raises(sa.exc.IntegrityError, match="job_runs_trigger_check"):
        with db.begin() as conn:
            conn.execute(sa.text("INSERT INTO job_runs (job, trigger, started_at) VALUES ('x', 'test', :now)"),
                         {"now": NOW})


FOREIGN_KEYS = {
    # (table, column): referenced table
    ("reconciliation_items", "run_id"): "reconciliation_runs",
    ("reconciliation_items", "last_seen_run_id"): "reconciliation_runs",
    ("reconciliation_runs", "job_run_id"): "job_runs",
    ("cleanup_runs", "reconciliation_run_id"): "reconciliation_runs",
    ("registrations_archive", "cleanup_run_id"): "cleanup_runs",
    ("webhook_events_archive", "cleanup_run_id"): "cleanup_runs",
    ("sweep_runs", "job_run_id"): "job_runs",
    ("missed_events", "sweep_run_id"): "sweep_runs",
    ("missed_events", "last_sweep_run_id"): "sweep_runs",
}


def test_every_run_pointer_is_a_validated_foreign_key(engine):
    with engine.connect() as conn:
        rows = conn.execute(sa.text("""
            SELECT c.conrelid::regclass::text AS tab, a.attname AS col, c.confrelid::regclass::text AS ref,
                   c.convalidated
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
            WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace""")).all()
    found = {(row.tab, row.col): (row.ref, row.convalidated) for row in rows}
    for key, referenced in FOREIGN_KEYS.items():
        assert found.get(key) == (referenced, True), key


def test_a_run_pointer_to_no_run_is_refused(db):
    with pytest.raises(sa.exc.IntegrityError, match="cleanup_runs_reconciliation_run_fkey"):
        with db.begin() as conn:
            conn.execute(sa.text("""
                INSERT INTO cleanup_runs (pending_days, events_days, started_at, reconciliation_run_id)
                VALUES (7, 90, :now, 424242)"""), {"now": NOW})
