import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from jobs.admin import migrate
from tests.support.schema_catalog import schema_dump


def test_second_run_applies_nothing_and_leaves_schema_identical(engine, database_url):
    before = schema_dump(database_url)
    report = migrate.run(engine)
    assert report.applied == []
    assert len(report.already_applied) == len(migrate.all_files())
    assert schema_dump(database_url) == before


def test_cli_second_run_says_nothing_to_do(database_url):
    result = subprocess.run([sys.executable, "-m", "jobs", "migrate"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout


def test_status_constraints_reject_unknown_statuses(db):
    with pytest.raises(sa.exc.IntegrityError, match="webhook_events_status_check"):
        with db.begin() as conn:
            conn.execute(sa.text("""INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload)
                                    VALUES ('evt_1', 'x', 'done', '{}')"""))
    with pytest.raises(sa.exc.IntegrityError, match="registrations_status_check"):
        with db.begin() as conn:
            conn.execute(sa.text("INSERT INTO registrations (email, processing_status) VALUES ('a@b.c', 'paid')"))


def test_stripe_event_id_is_unique(db):
    insert = sa.text("INSERT INTO webhook_events (stripe_event_id, event_type, payload) VALUES ('evt_dup', 'x', '{}')")
    with db.begin() as conn:
        conn.execute(insert)
    with pytest.raises(sa.exc.IntegrityError, match="webhook_events_stripe_event_id_key"):
        with db.begin() as conn:
            conn.execute(insert)


def test_row_level_security_is_on_for_every_project_table(engine):
    with engine.connect() as conn:
        without_rls = conn.execute(sa.text("""
            SELECT relname FROM pg_class
            WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace
              AND relname <> 'schema_migrations' AND NOT relrowsecurity""")).scalars().all()
    assert without_rls == []


def test_unreachable_database_exits_2_with_one_line():
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}
    result = subprocess.run([sys.executable, "-m", "jobs", "migrate"], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot connect to the database" in lines[0] and "127.0.0.1" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("env, expected", [
    ({"DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL"),
    ({"MONITOR_STATEMENT_TIMEOUT_MS": "soon"}, "MONITOR_STATEMENT_TIMEOUT_MS"),
])
def test_bad_setting_exits_2_naming_it(env, expected):
    full_env = {**os.environ, **env}
    result = subprocess.run([sys.executable, "-m", "jobs", "migrate"], capture_output=True, text=True, env=full_env)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
