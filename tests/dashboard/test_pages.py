"""Every page in AppTest on an empty and on a demo-like database; the window selector and the
events search on hand-built data; a database that cannot be reached."""

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from dashboard.components.text import markdown_literal
from devharness import empty_tables
from devharness import project_tables as list_project_tables
from tests.support.apptest import open_dashboard
from tests.support.dashboard_samples import add_sample_history
from tests.support.factories import add_event

PAGES = ["views/overview/page.py", "views/events/page.py", "views/errors/page.py", "views/funnel/page.py",
         "views/reconciliation/page.py", "views/health/page.py", "views/alerts/page.py"]
CHARTS = {"views/overview/page.py": 4, "views/errors/page.py": 3, "views/funnel/page.py": 2}


def chart_specs(at):
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


@pytest.mark.parametrize("page", PAGES)
def test_page_on_an_empty_database(db, login_off, page):
    at = open_dashboard(page)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


@pytest.fixture(scope="module")
def demo_like_built():
    """Row counts of the shared demo-like history, once built (None: not yet)."""
    return {}


@pytest.fixture
def demo_like(engine, demo_like_built):
    """A demo-like history, built once for the page-by-window tests below (and again only if
    another test emptied the tables in between): rendering a page writes nothing, which is
    checked after each test, so each of them sees exactly what the first one saw."""
    if not demo_like_built or row_counts(engine) != demo_like_built:
        empty_tables(engine)
        with engine.begin() as conn:
            add_sample_history(conn, datetime.now(timezone.utc))
        demo_like_built.clear()
        demo_like_built.update(row_counts(engine))
    yield engine
    assert row_counts(engine) == demo_like_built, "a page test changed the shared history"


def row_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {table: conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar()
                for table in list_project_tables(engine)}


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("window", ["24h", "7d", "30d"])
def test_page_on_a_demo_like_database(demo_like, login_off, page, window):
    at = open_dashboard()
    at.sidebar.button_group(key="window_choice").set_value(window).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    if page in CHARTS and window != "24h":  # 24h may hold too little sample data for every chart
        specs = chart_specs(at)
        assert len(specs) == CHARTS[page]
        assert all(spec["data"] for spec in specs), "a chart came out empty on a full database"


@pytest.fixture(scope="module")
def demo_loaded(engine, project_tables):
    """The project's own demo history (python -m jobs demo-data), small, ending now."""
    from jobs.admin import demo_data

    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in project_tables) + " CASCADE"))
    demo_data.run(engine, now=datetime.now(timezone.utc), days=30, events_per_day=200)
    yield engine


@pytest.mark.parametrize("page", PAGES)
def test_page_on_the_demo_database(demo_loaded, login_off, page):
    at = open_dashboard()
    at.sidebar.button_group(key="window_choice").set_value("7d").run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    if page in CHARTS:
        assert all(spec["data"] for spec in chart_specs(at)) and len(chart_specs(at)) == CHARTS[page]


def test_empty_database_has_friendly_empty_states(db, login_off):
    at = open_dashboard()
    assert "No webhook events recorded yet" in at.info[0].value
    at.switch_page("views/errors/page.py").run()
    assert "No failed or retried events" in at.success[0].value
    at.switch_page("views/funnel/page.py").run()
    assert "No registrations were created" in at.info[0].value


# --- the window selector changes the KPIs -----------------------------------------------

@pytest.fixture
def spread_over_time(db):
    """Events 2 hours, 3 days, 20 days and 40 days old, so each window sees a different set."""
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        for age, completed, failed, durations in [
            (timedelta(hours=2), 3, 1, [100, 200, 300]),
            (timedelta(days=3), 5, 2, [1000] * 5),
            (timedelta(days=20), 10, 0, [50] * 10),
            (timedelta(days=40), 1, 0, [10]),
        ]:
            for i in range(completed):
                add_event(conn, created_at=now - age - timedelta(minutes=i), duration_ms=durations[i])
            for i in range(failed):
                add_event(conn, created_at=now - age - timedelta(minutes=30 + i), status="failed",
                          duration_ms=5, error="boom")
        add_event(conn, created_at=now - timedelta(minutes=40), status="processing")  # stuck (> 15 min)
    return db


def kpis(at):
    return {m.label: (m.value, m.delta) for m in at.metric}


@pytest.mark.parametrize("window, expected", [
    # events, success rate, failed, stuck, p95 of completed durations
    # The window before the 24h and 7d windows holds no event: no deltas against nothing.
    ("24h", {"Events": ("5", ""), "Success rate": ("75.0%", ""), "Failed": ("1", ""),
             "Stuck": ("1", ""), "p95 duration": ("290 ms", "")}),
    ("7d", {"Events": ("12", ""), "Success rate": ("72.7%", ""), "Failed": ("3", ""),
            "Stuck": ("1", ""), "p95 duration": ("1.0 s", "")}),
    ("30d", {"Events": ("22", "+21"), "Success rate": ("85.7%", "-14.3 pp"), "Failed": ("3", "+3"),
             "Stuck": ("1", "+1"), "p95 duration": ("1.0 s", "+990 ms")}),
])
def test_switching_the_window_changes_the_kpis(spread_over_time, login_off, window, expected):
    at = open_dashboard()
    at.sidebar.button_group(key="window_choice").set_value(window).run()
    assert not at.exception
    shown = kpis(at)
    assert {label: shown[label] for label in expected} == expected
    assert shown["Last event"][0] == "40 min"  # the stuck event is the newest


def test_window_choice_is_kept_across_pages(spread_over_time, login_off):
    at = open_dashboard()
    at.sidebar.button_group(key="window_choice").set_value("7d").run()
    at.switch_page("views/events/page.py").run()
    assert any(c.value.startswith("12 events in the last 7d") for c in at.caption)
    at.switch_page("views/overview/page.py").run()
    assert kpis(at)["Events"][0] == "12"


def test_silence_warning_when_the_endpoint_went_quiet(db, login_off):
    now = datetime.now(timezone.utc)
    with db.begin() as conn:  # one event a minute for an hour, then nothing for three hours
        for minute in range(60):
            add_event(conn, created_at=now - timedelta(hours=3, minutes=minute), duration_ms=10)
    at = open_dashboard()
    assert "No webhook event for 3 h" in at.warning[-1].value


# --- events search ----------------------------------------------------------------------

@pytest.fixture
def searchable(db):
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        for i, (event_id, error) in enumerate([
            ("evt_alpha1", None), ("evt_alpha2", "card_declined for 50% of 'tries'"),
            ("evt_beta", "'; drop table webhook_events; --"), ("evt_gamma", "timeout 🚀"),
        ]):
            add_event(conn, created_at=now - timedelta(hours=1, minutes=i), event_id=event_id,
                      status="failed" if error else "completed", error=error, duration_ms=10,
                      livemode=event_id == "evt_beta")
    return db


def search(at, text):
    at.text_input(key="events_search").input(text).run()
    assert not at.exception, at.exception
    if not at.dataframe:
        return []
    return list(at.dataframe[0].value["stripe_event_id"])


@pytest.mark.parametrize("text, expected", [
    ("", ["evt_alpha1", "evt_alpha2", "evt_beta", "evt_gamma"]),
    ("ALPHA", ["evt_alpha1", "evt_alpha2"]),
    ("50%", ["evt_alpha2"]),
    ("%", ["evt_alpha2"]),
    ("_", ["evt_alpha1", "evt_alpha2", "evt_beta", "evt_gamma"]),
    ("'tries'", ["evt_alpha2"]),
    ("'; drop table webhook_events; --", ["evt_beta"]),
    ("🚀", ["evt_gamma"]),
    ("x" * 10_000, []),
    ("\\", []),
])
def test_events_search_finds_exactly_the_expected_rows(searchable, login_off, text, expected):
    at = open_dashboard("views/events/page.py")
    assert search(at, text) == expected
    with searchable.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar() == 4


def test_event_detail_with_stripe_link(searchable, login_off):
    at = open_dashboard("views/events/page.py")
    search(at, "evt_beta")
    at.selectbox(key=next(s.key for s in at.selectbox if s.label == "Event detail")).select("evt_beta").run()
    assert not at.exception
    assert at.subheader[0].value == markdown_literal("checkout.session.completed") + " · " + markdown_literal("evt_beta")
    assert at.code[0].value == "'; drop table webhook_events; --"
    link = at.get("link_button")[0]
    assert link.proto.url == "https://dashboard.stripe.com/events/evt_beta"  # livemode: no /test/
    assert json.loads(at.json[0].proto.body)["id"] == "evt_beta"


def test_events_filters_by_status(searchable, login_off):
    at = open_dashboard("views/events/page.py")
    at.multiselect(key="events_statuses").select("completed").run()
    assert list(at.dataframe[0].value["stripe_event_id"]) == ["evt_alpha1"]


def test_events_pagination(db, login_off):
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        for i in range(120):
            add_event(conn, created_at=now - timedelta(minutes=i + 1), event_id=f"evt_{i:03d}", duration_ms=1)
    at = open_dashboard("views/events/page.py")
    assert list(at.dataframe[0].value["stripe_event_id"])[:2] == ["evt_000", "evt_001"]
    pagination = at.get("pagination")[0]
    assert pagination.num_pages == 3
    pagination.set_value(3)
    at.run()
    assert list(at.dataframe[0].value["stripe_event_id"]) == [f"evt_{i:03d}" for i in range(100, 120)]


# --- the database is not there ----------------------------------------------------------

def test_unreachable_database_gives_a_clear_error(db, login_off, monkeypatch):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", "postgresql://monitor:secret@127.0.0.1:9/nowhere")
    for page in PAGES[:4]:
        at = open_dashboard(page)
        assert not at.exception, at.exception
        message = at.error[0].value
        assert "cannot connect to the database" in message and "DASHBOARD_DATABASE_URL" in message
        assert "secret" not in message
