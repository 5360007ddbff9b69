"""The checkout domain (core/checkout.py): the payment rules the receiver, reconciliation,
cleanup and the dashboard share."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from core import checkout
from jobs.reconcile.rules import Registration, assess
from local_stripe import checkout_session
from tests.support.factories import add_registration

REG_ID = "6f1c2d3e-0000-4000-8000-000000000001"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("amount, currency, shown", [
    (2500, "jpy", "2,500 JPY"), (2500, "JPY", "2,500 JPY"), (2500, "eur", "25.00 EUR"),
    (1234, "bhd", "1.234 BHD"), (99, "krw", "99 KRW"), (0, "jpy", "0 JPY"),
    (2500, None, "25.00"), (None, "jpy", None), (float("nan"), "eur", None), ("x", "eur", None),
])
def test_money_is_shown_in_the_currency_s_own_decimals(amount, currency, shown):
    assert checkout.format_money(amount, currency) == shown


def test_a_review_reason_shows_yen_as_yen():
    session = checkout_session(id="cs_test_yen", status="complete", payment_status="paid",
                               amount_total=3000, currency="jpy", client_reference_id=REG_ID)
    local = Registration(id=REG_ID, stripe_checkout_session_id="cs_test_yen",
                         processing_status="completed", amount_total=2500, currency="jpy")
    mismatch = assess(session, local)
    assert mismatch.kind == "amount_mismatch"
    assert mismatch.reason == "Stripe was paid 3,000 JPY, registration expects 2,500 JPY"


@pytest.mark.parametrize("reference, expected", [
    (REG_ID, REG_ID), (REG_ID.upper(), REG_ID), (f"{{{REG_ID}}}", REG_ID),
    ("order-17", None), ("", None), (None, None), (17, None),
])
def test_client_reference_id_names_a_registration_only_when_it_is_a_uuid(reference, expected):
    assert checkout.registration_id(reference) == expected


def test_a_session_matches_by_its_id_before_its_client_reference_id():
    rows = {"by_session": "row recording cs_1", REG_ID: "row named by the reference"}
    lookups = {"by_session_id": {"cs_1": rows["by_session"]}.get, "by_id": {REG_ID: rows[REG_ID]}.get}
    assert checkout.match_registration("cs_1", REG_ID, **lookups) == "row recording cs_1"
    assert checkout.match_registration("cs_2", REG_ID.upper(), **lookups) == "row named by the reference"
    assert checkout.match_registration("cs_2", "free text", **lookups) is None
    assert checkout.match_registration(None, None, **lookups) is None


def _row(conn, registration_id):
    return conn.execute(sa.text("SELECT processing_status, stripe_checkout_session_id, amount_total, currency, "
                                "completed_at FROM registrations WHERE id = :id"),
                        {"id": registration_id}).mappings().one()


def test_completing_changes_only_a_row_still_pending(db):
    with db.begin() as conn:
        pending = add_registration(conn, created_at=NOW, amount_total=None, currency=None)
        failed = add_registration(conn, created_at=NOW, status="failed", session_id="cs_test_failed")
        assert checkout.complete_registration(conn, registration_id=pending, session_id="cs_test_paid",
                                              amount_total=2500, currency="JPY", completed_at=NOW)
        assert not checkout.complete_registration(conn, registration_id=failed, session_id="cs_test_failed",
                                                  amount_total=2500, currency="jpy", completed_at=NOW)
        assert dict(_row(conn, pending)) == {"processing_status": "completed",
                                             "stripe_checkout_session_id": "cs_test_paid",
                                             "amount_total": 2500, "currency": "jpy", "completed_at": NOW}
        assert _row(conn, failed)["processing_status"] == "failed"
        # A second completion (a duplicate event, a re-run) changes nothing.
        assert not checkout.complete_registration(conn, registration_id=pending, session_id="cs_test_paid",
                                                  amount_total=9999, currency="eur", completed_at=None)
        assert _row(conn, pending)["amount_total"] == 2500


def test_completing_never_takes_a_session_another_row_records(db):
    with db.begin() as conn:
        holder = add_registration(conn, created_at=NOW, session_id="cs_test_taken")
        other = add_registration(conn, created_at=NOW)
        assert not checkout.complete_registration(conn, registration_id=other, session_id="cs_test_taken",
                                                  amount_total=2500, currency="eur", completed_at=NOW)
        assert _row(conn, other)["processing_status"] == "pending"
        assert _row(conn, holder)["stripe_checkout_session_id"] == "cs_test_taken"


def test_the_dashboard_labels_every_mismatch_kind_and_no_other():
    from dashboard.views.reconciliation.figures import KIND_LABELS

    assert set(KIND_LABELS) == set(checkout.MISMATCH_KINDS)
