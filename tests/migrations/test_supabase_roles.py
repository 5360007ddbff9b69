"""On a database set up as a Supabase project's (devharness.supabase.SupabaseServer),
`jobs migrate` run as Supabase's `postgres` user leaves the API roles nothing of ours:
checked over the catalog, so a function or table added later is covered without editing
this file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from devharness.supabase import SupabaseServer
from tests.migrations.test_layout import apply_legacy

REPO = Path(__file__).resolve().parents[2]
API_ROLES = ("anon", "authenticated")
OUR_FUNCTIONS = """
    SELECT p.oid, p.oid::regprocedure::text AS signature, p.proname, p.prosecdef, p.proconfig,
           p.prorettype = 'trigger'::regtype AS is_trigger
    FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"""
OUR_RELATIONS = """
    SELECT c.oid::regclass::text AS relation FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'p', 'm')"""


def migrate_cli(url: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "jobs", "migrate", *args], capture_output=True, text=True,
                            env={**os.environ, "DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def supabase():
    with SupabaseServer() as server:
        yield server


@pytest.fixture(scope="module")
def project(supabase):
    """A project database migrated by `DATABASE_URL=... python -m jobs migrate` as `postgres`."""
    url = supabase.project_database()
    migrate_cli(url)
    engine = sa.create_engine(url, poolclass=NullPool)
    yield url, engine
    engine.dispose()


def rows(engine, sql: str, **params) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]


def executable_by(engine, role: str) -> set[str]:
    return {r["proname"] for r in rows(engine, OUR_FUNCTIONS + " AND has_function_privilege(:role, p.oid, 'EXECUTE')",
                                       role=role)}


def test_migrate_runs_as_postgres_which_is_no_superuser(project):
    url, engine = project
    assert rows(engine, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user") == \
        [{"rolsuper": False, "rolbypassrls": True}]
    assert "nothing to do" in migrate_cli(url).stdout


def test_the_fixture_is_faithful_the_old_schema_was_open_to_anon(supabase):
    """The same database setup with the migrations of before: anon could call most functions,
    SECURITY DEFINER rollup functions among them (what the function files now take back)."""
    engine = sa.create_engine(supabase.project_database(), poolclass=NullPool)
    try:
        apply_legacy(engine)
        open_to_anon = rows(engine, OUR_FUNCTIONS + " AND has_function_privilege('anon', p.oid, 'EXECUTE')")
        definers = {r["proname"] for r in open_to_anon if r["prosecdef"] and not r["is_trigger"]}
        assert len(open_to_anon) > 30
        assert {"registration_rollup_append", "webhook_rollup_rebuild", "webhook_error_rollup_rebuild"} <= definers
    finally:
        engine.dispose()


@pytest.mark.parametrize("role", API_ROLES)
def test_api_roles_execute_no_function_of_ours(project, role):
    url, engine = project
    assert len(rows(engine, OUR_FUNCTIONS)) > 40
    assert executable_by(engine, role) == set()


def test_anon_calling_a_rollup_function_is_refused(project):
    url, engine = project
    with engine.connect() as conn:
        conn.execute(sa.text("SET ROLE anon"))
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied for function registration_rollup_append"):
            conn.execute(sa.text("SELECT public.registration_rollup_append(1, now(), 'cs_1', 'completed', now(), "
                                 "'eur', 100, true)"))


def test_service_role_calls_exactly_what_a_webhook_handler_needs(project):
    """The tracking module's functions (what tracking/*.sql calls), what those call in turn
    (they run as the caller), and error_fingerprint, which the stored columns of the rows they
    write are computed with."""
    url, engine = project
    needed = set()
    for path in (REPO / "tracking").glob("*.sql"):
        needed |= set(re.findall(r"public\.(\w+)\(", path.read_text(encoding="utf-8")))
    assert {"webhook_event_begin", "webhook_event_complete", "webhook_event_fail"} <= needed
    bodies = {r["proname"]: r["prosrc"] for r in rows(engine, "SELECT proname, prosrc FROM pg_proc "
                                                          "WHERE pronamespace = 'public'::regnamespace")}
    while True:
        called = {name for caller in needed for name in re.findall(r"public\.(\w+)\(", bodies[caller])} & set(bodies)
        if called <= needed:
            break
        needed |= called
    assert executable_by(engine, "service_role") == needed | {"error_fingerprint"}


def test_service_role_records_a_failed_then_completed_delivery(project):
    """What an Edge Function does with the service_role key, end to end, row-level security on."""
    url, engine = project
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL ROLE service_role"))
        begin = sa.text("SELECT decision, attempt FROM public.webhook_event_begin('evt_sb_1', 'checkout.session.completed', "
                        "'{}'::jsonb)")
        assert conn.execute(begin).one() == ("process", 1)
        assert conn.execute(sa.text("SELECT public.webhook_event_fail('evt_sb_1', 'timeout', NULL, 'network', 1)")).scalar()
        assert conn.execute(begin).one() == ("process", 2)
        assert conn.execute(sa.text("SELECT public.webhook_event_hold('evt_sb_1', 2)")).scalar() is not None
        assert conn.execute(sa.text("SELECT public.webhook_event_complete('evt_sb_1', 'ok', NULL, 2)")).scalar()
        conn.execute(sa.text("SELECT public.webhook_event_release('evt_sb_1')"))
    assert rows(engine, "SELECT processing_status, attempts FROM webhook_events WHERE stripe_event_id = 'evt_sb_1'") == \
        [{"processing_status": "completed", "attempts": 2}]


@pytest.mark.parametrize("role", API_ROLES)
def test_api_roles_read_no_row_of_ours(project, role):
    url, engine = project
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT public.webhook_event_begin('evt_sb_rows', 'x', '{}'::jsonb)"))
        conn.execute(sa.text("INSERT INTO registrations (email) VALUES ('a@example.com')"))
    relations = [r["relation"] for r in rows(engine, OUR_RELATIONS)]
    assert "webhook_events" in relations and "error_retry_policy" in relations
    readable = {}
    with engine.connect() as conn:
        conn.execute(sa.text(f"SET ROLE {role}"))
        for relation in relations:
            if conn.execute(sa.text("SELECT has_table_privilege(current_user, :r, 'SELECT')"), {"r": relation}).scalar():
                # Supabase's default privileges grant SELECT on every table; row-level security
                # (no policy for the API roles) must leave it empty.
                count = conn.execute(sa.text(f"SELECT count(*) FROM {relation}")).scalar()
                if count:
                    readable[relation] = count
    assert readable == {}


def test_every_security_definer_function_pins_its_search_path(project):
    url, engine = project
    definers = [r for r in rows(engine, OUR_FUNCTIONS) if r["prosecdef"]]
    assert len(definers) >= 10
    unpinned = [r["signature"] for r in definers
                if not any(setting.startswith("search_path=") for setting in (r["proconfig"] or []))]
    assert unpinned == []
