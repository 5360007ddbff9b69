"""On a standard PostgreSQL (Debian's, as Supabase and managed servers run it), not only the embedded one.

The embedded server has no JIT. A server with LLVM JIT compiles every statement whose cost
estimate passes ``jit_above_cost``, and compiling took seconds per cold page at 10M events:
here the server is told to JIT everything, and our sessions must still never compile. The
migrations and one page render run here as well.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from core.db import create_dashboard_engine, create_jobs_engine
from core.settings import get_settings
from devharness import ThrowawayDatabase, patched_env
from devharness.system_postgres import SystemPostgres, installed
from queries import QUERIES
from tests.support.apptest import open_dashboard
from tests.support.factories import add_event

pytestmark = pytest.mark.skipif(not installed(), reason="no PostgreSQL server package (apt-get install postgresql)")

# A server that compiles every statement it can: the worst a database's defaults can do.
FORCED_JIT = {"jit": "on", "jit_above_cost": "0", "jit_inline_above_cost": "0", "jit_optimize_above_cost": "0"}


@pytest.fixture(scope="module")
def forced_jit_database():
    with SystemPostgres(settings=FORCED_JIT) as server, ThrowawayDatabase(server_url=server.url) as database:
        with patched_env({"DATABASE_URL": database.url, "DASHBOARD_DATABASE_URL": None}):
            yield database.url


def jit_in_plan(conn, query_name: str, **params) -> bool:
    """Whether PostgreSQL compiled the statement: EXPLAIN ANALYZE reports a "JIT" section then."""
    query = QUERIES[query_name]
    query.check(params)
    plan = conn.execute(sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {query.sql}"), params).scalar()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    return "JIT" in plan[0]


def kpi_params():
    from datetime import datetime, timedelta, timezone

    end = datetime.now(timezone.utc)
    return dict(start=end - timedelta(days=30), end=end, stuck_before=end - timedelta(minutes=15))


def test_the_server_compiles_but_our_sessions_do_not(forced_jit_database):
    plain = sa.create_engine(forced_jit_database, poolclass=NullPool)
    try:
        with plain.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_jit_available()")).scalar(), "this server has no JIT provider"
            assert jit_in_plan(conn, "event_kpis", **kpi_params())  # the server on its own compiles
    finally:
        plain.dispose()
    for make in (create_dashboard_engine, create_jobs_engine):
        engine = make(get_settings())
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("SHOW jit")).scalar() == "off"
                assert not jit_in_plan(conn, "event_kpis", **kpi_params()), make.__name__
        finally:
            engine.dispose()


def test_migrating_twice_on_a_standard_server_changes_nothing(forced_jit_database):
    from jobs.admin import migrate

    engine = create_jobs_engine(get_settings())
    try:
        with engine.connect() as conn:
            applied = conn.execute(sa.text("SELECT count(*) FROM schema_migrations")).scalar()
        migrate.run(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM schema_migrations")).scalar() == applied
    finally:
        engine.dispose()


def test_the_overview_renders_on_a_standard_server(forced_jit_database, login_off):
    from datetime import datetime, timedelta, timezone

    engine = create_jobs_engine(get_settings())
    now = datetime.now(timezone.utc)
    try:
        with engine.begin() as conn:
            for minutes, status in ((5, "completed"), (50, "failed"), (300, "completed")):
                add_event(conn, created_at=now - timedelta(minutes=minutes), status=status, duration_ms=40,
                          error="boom" if status == "failed" else None)
    finally:
        engine.dispose()
    at = open_dashboard("views/overview/page.py")
    assert not at.exception, [e.value for e in at.exception]
    assert at.get("plotly_chart"), "the Overview drew no chart"
