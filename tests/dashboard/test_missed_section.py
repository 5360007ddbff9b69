"""The Reconciliation page's Missed events section under AppTest: the open list money first,
Sweep now and Replay (plan, confirm) run in the background through the write gateway."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import auth
from devharness import AsgiServerThread
from local_stripe import checkout_session
from tests.dashboard.test_missed_events_pages import add_missed
from tests.support.factories import add_registration
from tracking.receiver import Receiver

PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "views" / "reconciliation" / "page.py")
SECRET = "whsec_test_missed_section"


@pytest.fixture(autouse=True)
def fresh_cache():
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def page() -> AppTest:
    """The page as a session logged in as ana (what the entry script's login sets)."""
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.user = {"is_logged_in": True, "email": "ana@example.com"}
    at.session_state[auth.IDENTITY_KEY] = "ana@example.com"
    return at


def button(at, key):
    return next(b for b in at.button if b.key == key)


def wait_for(at, predicate, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not predicate(at):
        time.sleep(0.5)
        at.run()
    assert predicate(at), ([e.value for e in at.error], [w.value for w in at.warning],
                           [i.value for i in at.info], [s.value for s in at.success])


def test_nothing_missed_and_no_replay_url(db, stripe_server):
    at = page().run()
    assert not at.exception, at.exception
    assert any("No missed event waits" in s.value for s in at.success)
    assert button(at, "sweep_replay").disabled
    assert not button(at, "sweep_now").disabled


def test_open_missed_events_are_listed_money_first(db, stripe_server):
    with db.begin() as conn:
        add_missed(conn, "evt_small", amount=500, currency="eur")
        add_missed(conn, "evt_big", amount=99900, currency="eur")
        add_missed(conn, "evt_none", amount=None, currency=None)
    at = page().run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if list(d.value.columns)[:1] == ["stripe_event_id"])
    assert list(table["stripe_event_id"]) == ["evt_big", "evt_small", "evt_none"]
    assert any("3 missed event(s)" in w.value and "1,004.00 EUR" in w.value for w in at.warning)


def test_sweep_now_then_replay_after_its_plan(db, stripe_server, engine, monkeypatch):
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        registration = add_registration(conn, created_at=now - timedelta(hours=2))
    session = checkout_session(created=int(now.timestamp()) - 3600, amount_total=4200,
                               client_reference_id=registration)
    stripe_server.add_event("checkout.session.completed", session, id="evt_page_missed",
                            created=int(now.timestamp()) - 3000, pending_webhooks=1, delivery_success=False)
    with AsgiServerThread(Receiver(engine=engine, webhook_secret=SECRET)) as receiver:
        monkeypatch.setenv("MONITOR_REPLAY_URL", f"{receiver.url}/stripe/webhook")
        monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
        at = page().run()
        at.number_input(key="sweep_lookback").set_value(3)
        button(at, "sweep_now").click().run()
        wait_for(at, lambda at: any("Sweep #" in w.value and "1 still missing" in w.value for w in at.warning))
        with db.connect() as conn:
            run = conn.execute(sa.text("SELECT trigger, lookback_hours FROM sweep_runs")).mappings().one()
        assert dict(run) == {"trigger": "dashboard", "lookback_hours": 3}

        button(at, "sweep_replay").click().run()
        assert any("The plan" in m.value for m in at.markdown)  # planned first, nothing sent yet
        with db.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar_one() == 0
        button(at, "sweep_replay_confirmed").click().run()
        wait_for(at, lambda at: any("1 recovered" in s.value for s in at.success))
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM missed_events")).scalar_one() == "recovered"
        assert conn.execute(sa.text("SELECT processing_status FROM registrations")).scalar_one() == "completed"


def test_a_sweep_running_elsewhere_is_followed_instead_of_the_actions(db, stripe_server):
    from jobs.runtime import job_lock

    with db.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO job_runs (job, status, trigger, started_at, host, progress)
            VALUES ('sweep', 'running', 'schedule', now(), 'elsewhere',
                    '{"events_read": 1200, "pages": 12, "missing": 3}'::jsonb)"""))
    with job_lock(db, "sweep"):
        at = page().run()
    assert not at.exception, at.exception
    assert any("A sweep is running" in i.value and "1,200 events read in 12 pages, 3 missing" in i.value
               for i in at.info)
    assert not any(b.key == "sweep_now" for b in at.button)
