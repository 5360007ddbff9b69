"""Cleanup's stale pending registrations, checked against the local Stripe API before removal."""

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core.errors import ConfigError
from jobs.cleanup.decisions import Decision, decide, search_windows
from tests.support.factories import add_registration
from tests.support.stale_registrations import NOW, STALE, registrations, run_cleanup, stale_with_session


def test_paid_session_is_fixed_and_unpaid_or_missing_ones_are_archived_with_reasons(db, stripe_server, mixed):
    before = registrations(db)
    report = run_cleanup(db, now=NOW, trigger="cli")

    live, archived = registrations(db), registrations(db, "registrations_archive")
    assert set(archived) == {mixed["expired"], mixed["no_session"], mixed["unknown_session"]}
    assert set(live) | set(archived) == set(before) and not set(live) & set(archived)
    assert live[mixed["paid"]]["processing_status"] == "completed"  # fixed as reconciliation would
    for kept in ("open", "awaiting_payment", "fresh_expired"):
        assert live[mixed[kept]]["processing_status"] == "pending"

    reasons = {rid: (row["archive_reason"], row["stripe_session_status"], row["stripe_payment_status"])
               for rid, row in archived.items()}
    assert reasons == {mixed["expired"]: ("session_expired", "expired", "unpaid"),
                       mixed["no_session"]: ("no_session", None, None),
                       mixed["unknown_session"]: ("session_not_found", None, None)}
    for rid, row in archived.items():  # the whole row is kept
        assert row["row_data"]["email"] == before[rid]["email"]
        assert row["row_data"]["stripe_checkout_session_id"] == before[rid]["stripe_checkout_session_id"]
        assert row["cleanup_run_id"] == report.run_id and row["processing_status"] == "pending"

    assert (report.stale_pending_found, report.registrations_archived, report.registrations_kept_paid,
            report.registrations_kept_open, report.registrations_fixed, report.registrations_queued) == (6, 3, 1, 2, 1, 0)
    assert report.status == "completed" and not report.needs_person
    with db.connect() as conn:
        run = conn.execute(sa.text("SELECT * FROM cleanup_runs")).mappings().one()
        recon = conn.execute(sa.text("SELECT trigger, auto_fixed_count FROM reconciliation_runs")).one()
    assert run["registrations_archived"] == 3 and run["reconciliation_run_id"] == report.reconciliation_run_id
    assert run["details"]["archive_reasons"] == {"session_expired": 1, "no_session": 1, "session_not_found": 1}
    assert tuple(recon) == ("cleanup", 1)

    second = run_cleanup(db, now=NOW, trigger="cli")
    assert second.registrations_archived == 0 and registrations(db, "registrations_archive") == archived


def test_dry_run_changes_no_registration_and_records_no_reconciliation(db, stripe_server, mixed):
    before = registrations(db)
    report = run_cleanup(db, now=NOW, dry_run=True, trigger="cli")
    assert registrations(db) == before and registrations(db, "registrations_archive") == {}
    assert (report.registrations_archived, report.registrations_kept_paid, report.registrations_fixed) == (3, 1, 1)
    summary = "\n".join(report.summary_lines())
    assert "3 would be archived" in summary and "(1 would be fixed, 0 for manual review)" in summary
    assert report.reconciliation_run_id is None
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT dry_run FROM cleanup_runs")).scalar() is True
        # A preview leaves no reconciliation run and no review item behind.
        assert conn.execute(sa.text("SELECT count(*) FROM reconciliation_runs")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM reconciliation_items")).scalar() == 0


def test_paid_session_with_another_amount_is_queued_and_cli_exits_3(db, stripe_server):
    rid, _ = stale_with_session(db, stripe_server, status="complete", amount=9900)
    result = subprocess.run([sys.executable, "-m", "jobs", "cleanup", "--json"], capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    summary = json.loads(result.stdout)
    assert summary["registrations_queued"] == 1 and summary["needs_person"] is True
    assert registrations(db)[rid]["processing_status"] == "pending"
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT kind, action FROM reconciliation_items")).one() == \
            ("amount_mismatch", "manual_review")


def test_session_found_only_by_client_reference_id_is_never_removed(db, stripe_server):
    with db.begin() as conn:
        rid = add_registration(conn, created_at=STALE)  # the app never stored the session id
    session = stripe_server.add_session(status="complete", client_reference_id=rid,
                                        created=int(STALE.timestamp()) + 60)
    report = run_cleanup(db, now=NOW, trigger="cli")
    assert rid in registrations(db) and registrations(db, "registrations_archive") == {}
    assert report.registrations_kept_paid == 1 and report.registrations_fixed == 1
    # Reconciliation judged it by the session cleanup found, and completed it.
    row = registrations(db)[rid]
    assert (row["processing_status"], row["stripe_checkout_session_id"]) == ("completed", session["id"])
    assert report.paid_unresolved == [] and not report.needs_person


def test_expired_session_with_a_paid_retry_is_queued_for_a_person(db, stripe_server):
    rid, expired = stale_with_session(db, stripe_server, status="expired")
    stripe_server.add_session(status="complete", client_reference_id=rid, created=int(STALE.timestamp()) + 600)
    report = run_cleanup(db, now=NOW, trigger="cli")
    assert registrations(db)[rid]["processing_status"] == "pending"
    assert registrations(db)[rid]["stripe_checkout_session_id"] == expired["id"]
    assert report.registrations_queued == 1 and report.needs_person


def test_expired_session_is_kept_when_a_retry_by_the_same_customer_is_paid(db, stripe_server):
    rid, _ = stale_with_session(db, stripe_server, status="expired")
    stripe_server.add_session(status="complete", client_reference_id=rid, created=int(STALE.timestamp()) + 600)
    report = run_cleanup(db, now=NOW, trigger="cli")
    assert rid in registrations(db) and report.registrations_archived == 0 and report.registrations_kept_paid == 1


def test_a_webhook_landing_while_stripe_is_asked_wins(db, stripe_server):
    rid, _ = stale_with_session(db, stripe_server, status="expired")

    def webhook_completes_it(endpoint, _params):
        if endpoint == "list_checkout_sessions":
            with db.begin() as conn:
                conn.execute(sa.text("UPDATE registrations SET processing_status = 'completed', completed_at = now(), "
                                     "updated_at = now() WHERE id = :id"), {"id": rid})

    stripe_server.before_request(webhook_completes_it)
    report = run_cleanup(db, now=NOW, trigger="cli")
    assert registrations(db)[rid]["processing_status"] == "completed"
    assert registrations(db, "registrations_archive") == {}
    assert report.changed_meanwhile == 1 and report.registrations_archived == 0


def test_one_listing_covers_a_page_of_rows_without_retrieving_each(db, stripe_server):
    for i in range(12):
        stale_with_session(db, stripe_server, status="expired", created=STALE + timedelta(minutes=i))
    report = run_cleanup(db, now=NOW, trigger="cli")
    assert report.registrations_archived == 12
    assert stripe_server.counts["retrieve_checkout_session"] == 0
    assert stripe_server.counts["list_checkout_sessions"] == 1


def test_stripe_refusing_the_key_removes_nothing_and_is_a_configuration_error(db, stripe_server, mixed,
                                                                             monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_not_the_right_one")
    before = registrations(db)
    result = subprocess.run([sys.executable, "-m", "jobs", "cleanup"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Stripe refused the API key" in line and "STRIPE_API_KEY" in line
    assert registrations(db) == before and registrations(db, "registrations_archive") == {}
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT status, registrations_unchecked FROM cleanup_runs")).one() == ("failed", 6)


def test_a_key_of_another_account_is_noticed_before_anything_is_removed(db, stripe_server):
    with db.begin() as conn:
        add_registration(conn, created_at=STALE, status="completed", session_id="cs_test_" + "o" * 58)
        add_registration(conn, created_at=STALE)
    with pytest.raises(ConfigError, match="another Stripe account"):
        run_cleanup(db, now=NOW, trigger="cli")
    assert registrations(db, "registrations_archive") == {}


def test_live_sessions_are_not_judged_with_a_test_key(db, stripe_server):
    with db.begin() as conn:
        rid = add_registration(conn, created_at=STALE, session_id="cs_live_" + "l" * 58)
    report = run_cleanup(db, now=NOW, trigger="cli")
    assert rid in registrations(db) and report.registrations_unchecked == 1
    assert report.kept_reasons == {"other_stripe_mode": 1}


def session(status, payment_status="unpaid", sid="cs_test_a"):
    return {"id": sid, "status": status, "payment_status": payment_status}


@pytest.mark.parametrize("session_id, own, related, expected", [
    ("cs_test_a", session("complete", "paid"), [], Decision("reconcile", "paid", "complete", "paid", "cs_test_a")),
    ("cs_test_a", session("complete", "no_payment_required"), [],
     Decision("reconcile", "paid", "complete", "no_payment_required", "cs_test_a")),
    ("cs_test_a", session("expired"), [], Decision("archive", "session_expired", "expired", "unpaid")),
    ("cs_test_a", session("open"), [], Decision("keep", "session_open", "open", "unpaid")),
    ("cs_test_a", session("complete"), [], Decision("keep", "awaiting_payment", "complete", "unpaid")),
    ("cs_test_a", None, [], Decision("archive", "session_not_found")),
    (None, None, [], Decision("archive", "no_session")),
    (None, None, [session("expired", sid="cs_test_b")], Decision("archive", "session_expired", "expired", "unpaid")),
    ("cs_test_a", session("expired"), [session("complete", "paid", sid="cs_test_b")],
     Decision("reconcile", "paid", "complete", "paid", "cs_test_b")),
    ("cs_live_a", None, [], Decision("unchecked", "other_stripe_mode")),
])
def test_decide(session_id, own, related, expected):
    assert decide(session_id, own, related, api_key_mode="test") == expected


def test_search_windows_merge_close_registrations():
    day = datetime(2026, 1, 1, tzinfo=timezone.utc)
    windows = search_windows([day, day + timedelta(hours=5), day + timedelta(days=5)])
    assert windows == [(day - timedelta(hours=1), day + timedelta(hours=29)),
                       (day + timedelta(days=5, hours=-1), day + timedelta(days=6))]
