"""In Chromium: the status verdict and its links, who is affected and their links, search by
e-mail and Checkout Session, the registration an event touched."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from devharness.browser import exception_texts, log_in, open_page, password_env, streamlit_server, wait_for_script
from tests.support.browser import chromium_page
from tests.support.factories import add_event, add_registration

pytestmark = pytest.mark.browser

PASSWORD = "who is affected"
SESSION = "cs_test_" + "b" * 58
EMAIL = "ada.paid@example.com"


@pytest.fixture
def troubled_db(db):
    """Steady traffic, one stuck event, and one person who paid without a completed registration."""
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        for minute in range(0, 24 * 60, 20):
            add_event(conn, created_at=now - timedelta(minutes=minute + 1), duration_ms=50,
                      event_type="customer.created")
        add_event(conn, created_at=now - timedelta(hours=2), status="processing", event_id="evt_stuck_in_processing")
        rid = add_registration(conn, created_at=now - timedelta(days=9), session_id=SESSION, email=EMAIL,
                               amount_total=12500, currency="eur")
        add_event(conn, created_at=now - timedelta(days=9) + timedelta(minutes=5), event_id="evt_paid_for_ada",
                  status="failed", error="registration locked",
                  payload={"id": "evt_paid_for_ada", "type": "checkout.session.completed",
                           "data": {"object": {"id": SESSION, "object": "checkout.session",
                                               "payment_status": "paid", "client_reference_id": rid,
                                               "customer_details": {"email": EMAIL}}}})
    return db


def test_verdict_links_to_the_stuck_events(troubled_db):
    with streamlit_server(env=password_env(PASSWORD)) as server, chromium_page() as page:
        page.goto(server.url)
        log_in(page, PASSWORD)
        page.get_by_role("heading", name="Overview").wait_for()
        assert page.get_by_text(re.compile(r"^Degraded: \d+ reasons?$")).first.is_visible(), server.log()
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert sidebar.get_by_text("Status: degraded").is_visible()
        main = page.locator('[data-testid="stMain"]')
        main.get_by_role("link", name=re.compile("stuck in processing")).click()
        wait_for_script(page)
        page.get_by_role("heading", name="Events").wait_for()
        assert "view=stuck" in page.url
        page.get_by_text(re.compile(r"^1 event still processing after more than")).wait_for()
        assert not exception_texts(page), server.log()

        # The Stuck tile's number links to the same events.
        open_page(page, "Overview")
        main.get_by_role("link", name="The 1 stuck event").click()
        wait_for_script(page)
        page.get_by_text(re.compile(r"^1 event still processing after more than")).wait_for()


def test_who_is_affected_and_search_by_email_and_session(troubled_db):
    with streamlit_server(env=password_env(PASSWORD)) as server, chromium_page() as page:
        page.goto(server.url)
        log_in(page, PASSWORD)
        open_page(page, "Funnel")
        page.get_by_role("heading", name="Who is affected").wait_for()
        assert page.get_by_text(re.compile(r"^1 person \(whatever the window\)")).is_visible(), server.log()
        assert not exception_texts(page), server.log()

        open_page(page, "Events")
        search = page.get_by_role("textbox", name="Search")
        for typed in (EMAIL.upper(), SESSION):
            search.fill(typed)
            search.press("Enter")
            wait_for_script(page)
            # The paid event is 9 days old: out of the 24h window, found once it is chosen.
            page.get_by_text(re.compile(r"^No events match")).wait_for()
        page.locator('[data-testid="stSidebar"]').get_by_text("30d", exact=True).click()
        wait_for_script(page)
        page.get_by_text(re.compile(f"^1 event concerning {re.escape(SESSION)}")).wait_for()
        page.locator('[data-testid="stSelectbox"]').filter(has_text="Event detail").click()
        page.get_by_role("option", name="evt_paid_for_ada").click()
        wait_for_script(page)
        page.get_by_text("Registration it touched").wait_for()
        link = page.get_by_role("link", name="Open its Checkout Session in the Stripe Dashboard")
        assert link.get_attribute("href") == f"https://dashboard.stripe.com/test/checkout/sessions/{SESSION}"
        assert not exception_texts(page), server.log()


def test_a_link_from_who_is_affected_opens_their_events(troubled_db):
    # Login off (loopback only): the link is opened as a new page load, as a click on the
    # Funnel table's "events" cell does.
    with streamlit_server(env={"MONITOR_AUTH": "none"}) as server, chromium_page() as page:
        since = (datetime.now(timezone.utc) - timedelta(days=9)).strftime("%Y-%m-%d")
        page.goto(f"{server.url}/events?q={SESSION}&since={since}")
        wait_for_script(page)
        page.get_by_text(re.compile(f"^1 event concerning {re.escape(SESSION)} since {since}")).wait_for()
        assert not exception_texts(page), server.log()


def test_every_page_loads_only_from_the_dashboard_and_the_login_off_banner_is_one_line(troubled_db):
    with streamlit_server(env={"MONITOR_AUTH": "none"}) as server, chromium_page() as page:
        hosts: set[str] = set()
        page.on("request", lambda request: hosts.add(urlsplit(request.url).hostname or request.url[:20]))
        page.goto(server.url)
        wait_for_script(page)
        banner = page.get_by_text("Login is off")
        assert banner.is_visible() and banner.bounding_box()["height"] < 40  # one line
        for title in ("Events", "Errors", "Funnel", "Alerts", "Reconciliation", "Health", "Overview"):
            open_page(page, title)
        page.wait_for_timeout(1000)
        icon = page.locator('link[rel="shortcut icon"], link[rel="icon"]').first.get_attribute("href")
        assert not icon.startswith("http") or urlsplit(icon).hostname == "127.0.0.1", icon
        # data: URLs have no host; everything else came from the dashboard itself.
        assert {host for host in hosts if not host.startswith(("data:", "blob:"))} == {"127.0.0.1"}, hosts
        assert not exception_texts(page), server.log()


def test_an_error_group_links_to_its_failing_events(troubled_db):
    # The group's link, as the Errors page's "Its events" cell holds it.
    with streamlit_server(env={"MONITOR_AUTH": "none"}) as server, chromium_page() as page:
        page.goto(f"{server.url}/events?group=registration+locked")
        wait_for_script(page)
        page.locator('[data-testid="stSidebar"]').get_by_text("30d", exact=True).click()
        wait_for_script(page)
        page.get_by_text(re.compile(r"^1 event of this group failed now")).wait_for()
        assert not exception_texts(page), server.log()
