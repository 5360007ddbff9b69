"""Matching and classification: the pure part of reconciliation, as tables of cases."""

from __future__ import annotations

import pytest

from jobs.reconcile.rules import KIND_RULES, Registration, assess, find_mismatches
from local_stripe import checkout_session

REG_ID = "6f1c2d3e-0000-4000-8000-000000000001"
OTHER_ID = "6f1c2d3e-0000-4000-8000-000000000002"
SID = "cs_test_rule_1"


def session(status="complete", payment_status=None, amount=2500, currency="eur", ref=REG_ID, sid=SID):
    return checkout_session(id=sid, status=status, payment_status=payment_status,
                            amount_total=amount, currency=currency, client_reference_id=ref,
                            created=1_735_689_600)


def registration(status="pending", sid=SID, amount=2500, currency="eur", reg_id=REG_ID):
    return Registration(id=reg_id, stripe_checkout_session_id=sid, processing_status=status,
                        amount_total=amount, currency=currency)


CASES = [
    # (name, session, registration, expected kind or None)
    ("paid and completed agree", session(), registration("completed"), None),
    ("paid, local pending", session(), registration("pending"), "paid_but_pending"),
    ("no payment required counts as paid", session(payment_status="no_payment_required"),
     registration("pending"), "paid_but_pending"),
    ("paid, local failed", session(), registration("failed"), "paid_but_failed"),
    ("paid, local expired", session(), registration("expired"), "paid_but_failed"),
    ("paid, no local row", session(), None, "paid_no_registration"),
    ("paid, no reference, no row", session(ref=None), None, "paid_no_registration"),
    ("unpaid and abandoned, no row", session(status="expired"), None, None),
    ("expired, local pending", session(status="expired"), registration("pending"), "expired_but_pending"),
    ("expired, local expired", session(status="expired"), registration("expired"), None),
    ("expired, local failed", session(status="expired"), registration("failed"), None),
    ("expired, local completed", session(status="expired"), registration("completed"), "completed_not_paid"),
    ("open, local completed", session(status="open"), registration("completed"), "completed_not_paid"),
    ("open, local pending: checkout in progress", session(status="open"), registration("pending"), None),
    ("complete but unpaid (delayed method): not yet", session(payment_status="unpaid"),
     registration("pending"), None),
    ("complete but unpaid, local completed: not yet", session(payment_status="unpaid"),
     registration("completed"), None),
    ("paid other amount, local pending", session(amount=3000), registration("pending"), "amount_mismatch"),
    ("paid other amount, local completed", session(amount=3000), registration("completed"), "amount_mismatch"),
    ("paid other currency", session(currency="usd"), registration("completed"), "amount_mismatch"),
    ("currency compared without case", session(currency="eur"), registration("completed", currency="EUR"), None),
    ("local amount unknown: not compared", session(amount=9999), registration("completed", amount=None), None),
    ("no session in Stripe, local completed", None, registration("completed"), "completed_missing_in_stripe"),
    ("no session in Stripe, local pending", None, registration("pending"), None),
    ("completed with no session id at all", None, registration("completed", sid=None),
     "completed_missing_in_stripe"),
    ("matched by reference, row has no session yet", session(), registration("pending", sid=None),
     "paid_but_pending"),
    ("expired matched by reference only: another attempt may be open", session(status="expired"),
     registration("pending", sid=None), None),
    ("paid, registration tracks another session", session(), registration("pending", sid="cs_test_other"),
     "paid_no_registration"),
    ("expired earlier attempt of a registration", session(status="expired"),
     registration("completed", sid="cs_test_other"), None),
]


@pytest.mark.parametrize("stripe_session, local, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_assess(stripe_session, local, expected):
    mismatch = assess(stripe_session, local)
    assert (mismatch.kind if mismatch else None) == expected
    if mismatch:
        assert mismatch.reason
        details = mismatch.details()
        if stripe_session is None:
            assert details["stripe"] is None
        else:
            assert details["stripe"]["id"] == stripe_session["id"]
            assert details["stripe"]["payment_status"] == stripe_session["payment_status"]
        if local is not None and mismatch.registration_id:
            assert details["local"]["processing_status"] == local.processing_status


def test_every_kind_is_reachable_and_has_the_designed_action():
    kinds = {c[3] for c in CASES if c[3]}
    assert kinds == set(KIND_RULES)
    assert {k for k, (action, _) in KIND_RULES.items() if action == "auto_fixed"} == {
        "paid_but_pending", "expired_but_pending"}
    assert KIND_RULES["completed_not_paid"][1] == "critical"


def test_find_mismatches_matches_by_session_id_before_client_reference():
    by_session = registration("completed", sid="cs_test_a", reg_id=OTHER_ID)
    by_reference = registration("pending", sid=None, reg_id=REG_ID)
    sessions = [
        session(sid="cs_test_a", ref=REG_ID),           # session id wins: OTHER_ID, completed: fine
        session(sid="cs_test_b", ref=REG_ID),           # by reference: pending -> fix
        session(sid="cs_test_c", ref="not-a-uuid"),     # free-text reference, paid -> no row
        session(sid="cs_test_d", ref=None, status="expired"),  # nothing to say
    ]
    found = find_mismatches(sessions, [by_session, by_reference])
    assert [(m.kind, m.session_id, m.registration_id) for m in found] == [
        ("paid_but_pending", "cs_test_b", REG_ID),
        ("paid_no_registration", "cs_test_c", None),
    ]


def test_a_different_currency_is_its_own_reason():
    mismatch = assess(session(currency="usd", amount=2500), registration("completed", amount=2500))
    assert mismatch.kind == "amount_mismatch"
    assert mismatch.reason.startswith("currency differs: Stripe was paid in USD (25.00 USD), "
                                      "registration expects EUR (25.00 EUR)")
    other_amount = assess(session(amount=9900), registration("completed"))
    assert other_amount.reason == "Stripe was paid 99.00 EUR, registration expects 25.00 EUR"


def test_paid_without_a_registration_is_critical():
    assert assess(session(), None).severity == "critical"
