"""Who is affected: the affected_registrations query on real rows, the table built from it,
and the explorer's customer search and Stripe session links."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from dashboard.components.links import stripe_session_url
from dashboard.views.events.explorer import customer_search
from dashboard.views.funnel.affected import affected_table
from queries import fetch_df
from tests.support.factories import add_event, add_registration

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def paid_event(conn, session_id: str, *, at: datetime, email: str = "x@example.com", paid: bool = True):
    return add_event(conn, created_at=at, payload={
        "id": "evt", "type": "checkout.session.completed",
        "data": {"object": {"id": session_id, "payment_status": "paid" if paid else "unpaid",
                            "customer_details": {"email": email}}}})


def test_paid_but_not_completed_and_open_review_items_are_listed_with_links(db, dashboard_engine):
    with db.begin() as conn:
        paid = add_registration(conn, created_at=NOW - timedelta(days=9), session_id="cs_test_paid",
                                email="paid@example.com", amount_total=2500, currency="jpy")
        paid_event(conn, "cs_test_paid", at=NOW - timedelta(days=9))
        done = add_registration(conn, created_at=NOW - timedelta(days=1), status="completed", session_id="cs_test_done")
        paid_event(conn, "cs_test_done", at=NOW - timedelta(days=1))
        add_registration(conn, created_at=NOW - timedelta(days=1), session_id="cs_test_unpaid")
        paid_event(conn, "cs_test_unpaid", at=NOW - timedelta(days=1), paid=False)
        reviewed = add_registration(conn, created_at=NOW - timedelta(days=2), status="failed",
                                    session_id="cs_test_review", email="review@example.com")
        run_id = conn.execute(sa.text(
            "INSERT INTO reconciliation_runs (trigger, status, started_at, lookback_days, window_start, window_end)"
            " VALUES ('cli', 'completed', :t, 7, :t, :t) RETURNING id"), {"t": NOW}).scalar()
        item_id = conn.execute(sa.text(
            "INSERT INTO reconciliation_items (run_id, kind, action, registration_id, stripe_checkout_session_id)"
            " VALUES (:run, 'paid_but_failed', 'manual_review', :rid, 'cs_test_review') RETURNING id"),
            {"run": run_id, "rid": reviewed}).scalar()
    rows = fetch_df(dashboard_engine, "affected_registrations", limit=50)
    assert list(rows["registration_id"]) == [paid, reviewed] and done not in set(rows["registration_id"])
    assert set(rows["total"]) == {2}
    table = affected_table(rows, NOW)
    first, second = table.to_dict("records")
    assert first["email"] == "paid@example.com" and first["amount"] == "2,500 JPY"
    assert first["age"] == "9 d" and first["status"] == "pending (paid, not completed)"
    assert first["stripe"] == "https://dashboard.stripe.com/test/checkout/sessions/cs_test_paid"
    assert first["events"] == "/events?q=cs_test_paid&since=2026-11-11" and pd.isna(first["review"])
    assert second["review"] == f"/reconciliation?item={item_id}" and second["status"] == "failed (in review)"


@pytest.mark.parametrize("typed, who", [
    ("ada@example.com", "ada@example.com"),
    ("cs_test_a1B2", "cs_test_a1B2"),
    ("6f1c1a4e-3b1e-4c1e-9a55-0c8a1f6f3a10", "6f1c1a4e-3b1e-4c1e-9a55-0c8a1f6f3a10"),
    ("deadlock", None),
    ("evt_123", None),
])
def test_customer_search_recognises_emails_sessions_and_registration_ids(typed, who):
    assert customer_search(typed) == who


def test_stripe_session_links_follow_the_mode():
    assert stripe_session_url("cs_live_abc") == "https://dashboard.stripe.com/checkout/sessions/cs_live_abc"
    assert stripe_session_url("cs_test_abc") == "https://dashboard.stripe.com/test/checkout/sessions/cs_test_abc"
    assert stripe_session_url("javascript:alert(1)") is None


def event_for(conn, *, session_id: str, reference: str | None = None, registration_id: str | None = None) -> str:
    event_id = add_event(conn, created_at=NOW, payload={
        "id": "evt", "type": "checkout.session.completed",
        "data": {"object": {"id": session_id, "client_reference_id": reference, "payment_status": "paid"}}})
    if registration_id:
        conn.execute(sa.text("UPDATE webhook_events SET registration_id = :r WHERE stripe_event_id = :e"),
                     {"r": registration_id, "e": event_id})
    return event_id


def test_the_event_detail_finds_the_registration_by_recorded_id_then_session_then_reference(db, dashboard_engine):
    def found(event_id):
        rows = fetch_df(dashboard_engine, "registration_of_event", stripe_event_id=event_id)
        return None if rows.empty else (rows["registration_id"].iloc[0], bool(rows["archived"].iloc[0]))

    with db.begin() as conn:
        recorded = add_registration(conn, created_at=NOW, session_id="cs_test_recorded")
        by_session = add_registration(conn, created_at=NOW, session_id="cs_test_session")
        by_reference = add_registration(conn, created_at=NOW)
        archived = str(uuid.uuid4())
        conn.execute(sa.text(
            "INSERT INTO registrations_archive (id, stripe_checkout_session_id, email, processing_status, created_at,"
            " archive_reason, row_data) VALUES (:id, 'cs_test_archived', 'old@example.com', 'expired', :t,"
            " 'session_expired', '{}')"), {"id": archived, "t": NOW})
        # The recorded registration wins over the one the session names.
        first = event_for(conn, session_id="cs_test_session", registration_id=recorded)
        second = event_for(conn, session_id="cs_test_session", reference=by_reference)
        third = event_for(conn, session_id="cs_test_unknown", reference=by_reference)
        hostile = event_for(conn, session_id="cs_test_unknown", reference="'; DROP TABLE registrations; --")
        gone = event_for(conn, session_id="cs_test_archived")
    assert found(first) == (recorded, False)
    assert found(second) == (by_session, False)
    assert found(third) == (by_reference, False)
    assert found(hostile) is None
    assert found(gone) == (archived, True)
    assert found("evt_missing") is None


def test_the_kept_set_of_paid_unfinished_registrations_follows_every_change(db, dashboard_engine):
    """The triggers of migrations/functions/paid_unfinished.sql keep the candidates of "who
    is affected"; after each change the set is
    exactly the registrations not completed with a paid event for their session, and the
    list shows them."""
    def kept(conn):
        # The list's order comes from the set's copy of created_at: it must match the row's.
        assert conn.execute(sa.text(
            "SELECT count(*) FROM registrations_paid_unfinished u JOIN registrations r ON r.id = u.registration_id"
            " WHERE u.registration_created_at <> r.created_at")).scalar() == 0
        return set(conn.execute(sa.text("SELECT CAST(registration_id AS text) FROM registrations_paid_unfinished")).scalars())

    def defined(conn):
        return set(conn.execute(sa.text("""
            SELECT CAST(r.id AS text) FROM registrations r
            WHERE r.processing_status <> 'completed' AND EXISTS (
                SELECT 1 FROM webhook_events e
                WHERE e.payload -> 'data' -> 'object' ->> 'id' = r.stripe_checkout_session_id
                  AND (e.event_type = 'checkout.session.async_payment_succeeded'
                       OR (e.event_type = 'checkout.session.completed'
                           AND e.payload -> 'data' -> 'object' ->> 'payment_status' = 'paid')))""")).scalars())

    def listed():
        rows = fetch_df(dashboard_engine, "affected_registrations", limit=50)
        return set(rows["registration_id"])

    steps = []
    with db.begin() as conn:
        a = add_registration(conn, created_at=NOW - timedelta(days=2), session_id="cs_test_a")
        b = add_registration(conn, created_at=NOW - timedelta(days=2), session_id="cs_test_b")
        c = add_registration(conn, created_at=NOW - timedelta(days=2))          # no session yet
        steps.append(kept(conn) == defined(conn) == set())
        first_a = paid_event(conn, "cs_test_a", at=NOW - timedelta(days=1))    # a paid, not completed
        paid_event(conn, "cs_test_a", at=NOW - timedelta(hours=20))            # a second paid event
        paid_event(conn, "cs_test_b", at=NOW - timedelta(days=1), paid=False)  # b not paid
        steps.append(kept(conn) == defined(conn) == {a})
    assert listed() == {a}
    with db.begin() as conn:
        paid_event(conn, "cs_test_c", at=NOW - timedelta(hours=5))             # paid before c has the session
        conn.execute(sa.text("UPDATE registrations SET stripe_checkout_session_id = 'cs_test_c' WHERE id = :id"), {"id": c})
        steps.append(kept(conn) == defined(conn) == {a, c})
        conn.execute(sa.text("UPDATE registrations SET processing_status = 'completed' WHERE id = :id"), {"id": a})
        steps.append(kept(conn) == defined(conn) == {c})
        conn.execute(sa.text("UPDATE registrations SET processing_status = 'failed' WHERE id = :id"), {"id": a})
        steps.append(kept(conn) == defined(conn) == {a, c})
        conn.execute(sa.text("DELETE FROM webhook_events WHERE stripe_event_id = :id"), {"id": first_a})
        steps.append(kept(conn) == defined(conn) == {a, c})                    # still one paid event
        conn.execute(sa.text("DELETE FROM webhook_events WHERE payload -> 'data' -> 'object' ->> 'id' = 'cs_test_a'"))
        steps.append(kept(conn) == defined(conn) == {c})                       # its last paid event gone
        conn.execute(sa.text("DELETE FROM registrations WHERE id = :id"), {"id": c})  # archived by cleanup
        steps.append(kept(conn) == defined(conn) == set())
        paid_event(conn, "cs_test_b", at=NOW - timedelta(hours=1))
        steps.append(kept(conn) == defined(conn) == {b})
    assert listed() == {b}
    assert steps == [True] * len(steps)
    with db.begin() as conn:
        conn.execute(sa.text("TRUNCATE webhook_events CASCADE"))
        assert kept(conn) == defined(conn) == set()
