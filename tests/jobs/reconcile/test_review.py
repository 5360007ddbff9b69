"""The manual review queue: list, show and resolve reconciliation items."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from jobs.cli import main as cli
from jobs.reconcile import reconciler as reconcile
from jobs.reconcile import review
from jobs.stripe_gateway import gateway_from_settings
from tests.support.factories import add_registration


@pytest.fixture
def open_item(db, stripe_server):
    """One reconciliation run that leaves a paid_but_failed item open; returns its id."""
    now = datetime.now(timezone.utc)
    reg_id = str(uuid.uuid4())
    with db.begin() as conn:
        add_registration(conn, registration_id=reg_id, session_id="cs_test_review_me", status="failed",
                         created_at=now - timedelta(days=1), email="ana@example.com")
    stripe_server.add_session(id="cs_test_review_me", created=int(now.timestamp()) - 3600,
                              client_reference_id=reg_id, amount_total=2500)
    reconcile.run(db, now=now, gateway=gateway_from_settings(), trigger="cli")
    with db.connect() as conn:
        return conn.execute(sa.text("SELECT id FROM reconciliation_items")).scalar_one()


def test_list_shows_open_items_and_exits_3(db, open_item, capsys):
    assert cli(["review"]) == 3
    out = capsys.readouterr().out
    assert "1 open item(s)" in out and "paid_but_failed" in out and "cs_test_review_me" in out
    assert "session is paid but the registration is failed" in out


def test_show_prints_both_sides(db, open_item, capsys):
    assert cli(["review", "show", str(open_item)]) == 0
    out = capsys.readouterr().out
    assert "Stripe says:" in out and "Local row says:" in out
    assert "payment_status" in out and "paid" in out
    assert "ana@example.com" in out and "failed" in out


def test_show_prints_amounts_in_currency_units_and_times_as_dates(db, open_item, capsys):
    assert cli(["review", "show", str(open_item)]) == 0
    lines = [line.split(None, 1) for line in capsys.readouterr().out.splitlines() if line.strip()]
    facts = {}
    for parts in lines:
        if len(parts) == 2:
            facts.setdefault(parts[0], []).append(parts[1].strip())
    assert facts["amount"] == ["25.00 EUR", "25.00 EUR"]  # Stripe's 2500 cents, both sides
    assert "amount_total" not in facts and "currency" not in facts
    [stripe_created] = facts["created"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", stripe_created)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", facts["created_at"][0])
    assert facts["in"] == ["Stripe    https://dashboard.stripe.com/test/checkout/sessions/cs_test_review_me"]


def test_resolve_closes_the_item_and_keeps_it_as_history(db, open_item, capsys):
    assert cli(["review", "resolve", str(open_item), "--note", "refunded the customer", "--by", "ana"]) == 0
    assert f"item {open_item} resolved by ana" in capsys.readouterr().out
    item = review.get_item(db, open_item)
    assert item["resolved_by"] == "ana" and item["resolution_note"] == "refunded the customer"
    assert item["resolved_at"] is not None

    assert cli(["review", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"open_items": []}

    assert cli(["review", "resolve", str(open_item), "--note", "again"]) == 2
    err = capsys.readouterr().err
    assert "already resolved" in err and "by ana: refunded the customer" in err


def test_resolve_needs_a_note_and_an_existing_open_item(db, open_item, capsys):
    assert cli(["review", "resolve", str(open_item), "--note", "   "]) == 2
    assert "needs a note" in capsys.readouterr().err
    assert cli(["review", "resolve", "999999", "--note", "x"]) == 2
    assert "no reconciliation item 999999" in capsys.readouterr().err
    assert review.get_item(db, open_item)["resolved_at"] is None


def test_auto_fixed_and_dry_run_items_cannot_be_resolved(db, stripe_server):
    now = datetime.now(timezone.utc)
    reg_id = str(uuid.uuid4())
    with db.begin() as conn:
        add_registration(conn, registration_id=reg_id, session_id="cs_test_fixed", created_at=now - timedelta(days=1))
    stripe_server.add_session(id="cs_test_fixed", created=int(now.timestamp()) - 60, client_reference_id=reg_id)
    gateway = gateway_from_settings()
    reconcile.run(db, now=now, gateway=gateway, dry_run=True, trigger="cli")
    reconcile.run(db, now=now, gateway=gateway, trigger="cli")
    dry, fixed = review_ids(db)
    with pytest.raises(review.ItemNotOpen, match="dry run"):
        review.resolve_item(db, dry, note="x", by="ana", now=now)
    with pytest.raises(review.ItemNotOpen, match="auto-fixed"):
        review.resolve_item(db, fixed, note="x", by="ana", now=now)


def review_ids(db):
    with db.connect() as conn:
        return list(conn.execute(sa.text("SELECT id FROM reconciliation_items ORDER BY id")).scalars())


def test_list_json_carries_the_reason(db, open_item, capsys):
    assert cli(["review", "list", "--json"]) == 3
    [item] = json.loads(capsys.readouterr().out)["open_items"]
    assert item["id"] == open_item and item["kind"] == "paid_but_failed"
    assert item["reason"] == "session is paid but the registration is failed"
