"""Reconciliation against the local Stripe API and a real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core.errors import JobBusy
from devharness import refused_port
from jobs.cli import main as cli
from jobs.reconcile import reconciler as reconcile
from jobs.reconcile.rules import KIND_RULES
from jobs.runtime import job_lock
from jobs.stripe_gateway import StripeUnavailable, gateway_from_settings
from local_stripe import checkout_session
from tests.support.factories import add_registration

DAY = timedelta(days=1)


@pytest.fixture
def now():
    return datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def gateway(stripe_server):
    # Short 429 backoff so tests stay quick; pacing and retries as in production.
    return gateway_from_settings(rate_limit_backoff_s=0.02)


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def registration(db, reg_id):
    with db.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM registrations WHERE id = :id"), {"id": reg_id}).mappings().one()


def items(db):
    with db.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM reconciliation_items ORDER BY id")).mappings().all()


def runs(db):
    with db.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM reconciliation_runs ORDER BY id")).mappings().all()


def five(row) -> tuple:
    return tuple(row[name] for name in reconcile.FIVE_FIELDS)


# --- one test per mismatch kind ----------------------------------------------------------

KIND_CASES = {
    # kind: (registration fields or None, session fields or None, final local status,
    #        five numbers: payments, local, mismatches, auto-fixed, manual)
    "paid_but_pending": ({"status": "pending"}, {"status": "complete"}, "completed", (1, 1, 1, 1, 0)),
    "expired_but_pending": ({"status": "pending"}, {"status": "expired"}, "expired", (0, 1, 1, 1, 0)),
    "paid_but_failed": ({"status": "failed"}, {"status": "complete"}, "failed", (1, 1, 1, 0, 1)),
    "paid_no_registration": (None, {"status": "complete"}, None, (1, 0, 1, 0, 1)),
    "completed_not_paid": ({"status": "completed"}, {"status": "expired"}, "completed", (0, 1, 1, 0, 1)),
    "completed_missing_in_stripe": ({"status": "completed"}, None, "completed", (0, 1, 1, 0, 1)),
    "amount_mismatch": ({"status": "pending", "amount_total": 2500},
                        {"status": "complete", "amount_total": 4000}, "pending", (1, 1, 1, 0, 1)),
}


@pytest.mark.parametrize("kind", list(KIND_CASES))
def test_each_mismatch_kind(kind, db, stripe_server, gateway, now):
    local, stripe, final_status, expected_five = KIND_CASES[kind]
    reg_id = str(uuid.uuid4())
    sid = f"cs_test_{kind}"
    if local:
        with db.begin() as conn:
            add_registration(conn, registration_id=reg_id, session_id=sid, created_at=now - 2 * DAY,
                             completed_at=now - 2 * DAY if local["status"] == "completed" else None,
                             **{k: v for k, v in local.items() if k != "status"}, status=local["status"])
    if stripe:
        stripe_server.add_session(id=sid, created=ts(now - 2 * DAY) + 5, client_reference_id=reg_id,
                                  **stripe)

    report = reconcile.run(db, now=now, gateway=gateway, trigger="cli")

    assert five(report.five()) == expected_five
    [run] = runs(db)
    assert run["status"] == "completed" and five(run) == expected_five
    [item] = items(db)
    assert item["kind"] == kind and item["run_id"] == run["id"]
    assert item["stripe_checkout_session_id"] == sid
    assert item["registration_id"] == (uuid.UUID(reg_id) if local else None)
    action, severity = KIND_RULES[kind]
    assert item["action"] == action and item["severity"] == severity and not item["dry_run"]
    details = item["details"]
    assert details["reason"]
    if stripe:
        assert details["stripe"]["id"] == sid and details["stripe"]["status"] == stripe["status"]
    if local:
        assert details["local"]["registration_id"] == reg_id
        assert details["local"]["processing_status"] == local["status"]  # as seen before any fix
        row = registration(db, reg_id)
        assert row["processing_status"] == final_status
        if kind == "paid_but_pending":
            assert row["completed_at"] == now
    if action == "auto_fixed":
        assert item["resolved_at"] is not None and item["resolved_by"] == "reconcile"
        assert report.open_review_items == 0 and not report.needs_person
    else:
        assert item["resolved_at"] is None
        assert report.open_review_items == 1 and report.needs_person


def test_a_run_given_a_now_30_days_in_the_past_finishes_completed(db, stripe_server, gateway, now):
    past = now - 30 * DAY
    reg_id = str(uuid.uuid4())
    with db.begin() as conn:
        add_registration(conn, registration_id=reg_id, session_id="cs_test_back_then", created_at=past - DAY)
    stripe_server.add_session(id="cs_test_back_then", created=ts(past - DAY) + 5, client_reference_id=reg_id)

    report = reconcile.run(db, now=past, gateway=gateway)

    assert report.status == "completed" and report.auto_fixed_count == 1
    [run] = runs(db)
    assert run["status"] == "completed" and run["error"] is None
    # The duration is the run's own (seconds at most), not the wall clock's 30 days since `now`.
    assert 0 <= run["duration_ms"] < 60_000
    assert run["started_at"] == past and past <= run["finished_at"] < past + timedelta(minutes=1)
    with db.connect() as conn:
        job = conn.execute(sa.text("SELECT status, duration_ms FROM job_runs WHERE job = 'reconcile'")).one()
    assert job.status == "completed" and 0 <= job.duration_ms < 60_000
    assert registration(db, reg_id)["completed_at"] == past


def test_registration_outside_the_window_is_matched_and_fixed(db, stripe_server, gateway, now):
    reg_id = str(uuid.uuid4())
    with db.begin() as conn:  # registered 10 days ago, no session id recorded yet
        add_registration(conn, registration_id=reg_id, created_at=now - 10 * DAY)
    stripe_server.add_session(id="cs_test_late", created=ts(now - 3 * DAY), client_reference_id=reg_id)

    report = reconcile.run(db, now=now, gateway=gateway, trigger="cli")

    assert five(report.five()) == (1, 0, 1, 1, 0)
    row = registration(db, reg_id)
    assert row["processing_status"] == "completed"
    assert row["stripe_checkout_session_id"] == "cs_test_late"


def test_sessions_outside_the_window_are_not_read(db, stripe_server, gateway, now):
    stripe_server.add_session(created=ts(now - 9 * DAY))  # paid, no registration, but too old
    report = reconcile.run(db, now=now, gateway=gateway, lookback_days=7, trigger="cli")
    assert five(report.five()) == (0, 0, 0, 0, 0)
    assert report.sessions_checked == 0


# --- safety ------------------------------------------------------------------------------

def test_a_webhook_landing_between_listing_and_fixing_wins(db, stripe_server, gateway, now):
    reg_id = str(uuid.uuid4())
    with db.begin() as conn:
        add_registration(conn, registration_id=reg_id, session_id="cs_test_race", created_at=now - DAY)
    stripe_server.add_session(id="cs_test_race", created=ts(now - DAY), client_reference_id=reg_id)
    webhook_time = now - timedelta(minutes=3)

    def webhook_arrives(endpoint, params):
        # While reconciliation re-reads the session, the app's webhook completes the row.
        if endpoint == "retrieve_checkout_session" and params["id"] == "cs_test_race":
            with db.begin() as conn:
                conn.execute(sa.text("""UPDATE registrations SET processing_status = 'completed',
                                        completed_at = :t WHERE id = :id"""), {"t": webhook_time, "id": reg_id})

    stripe_server.before_request(webhook_arrives)
    report = reconcile.run(db, now=now, gateway=gateway, trigger="cli")

    assert stripe_server.counts["retrieve_checkout_session"] == 1
    row = registration(db, reg_id)
    assert row["processing_status"] == "completed" and row["completed_at"] == webhook_time
    assert items(db) == []
    assert report.fixes_superseded == 1
    assert five(report.five()) == (1, 1, 0, 0, 0)


def test_a_row_failed_meanwhile_is_queued_not_overwritten(db, stripe_server, gateway, now):
    reg_id = str(uuid.uuid4())
    with db.begin() as conn:
        add_registration(conn, registration_id=reg_id, session_id="cs_test_race2", created_at=now - DAY)
    stripe_server.add_session(id="cs_test_race2", created=ts(now - DAY), client_reference_id=reg_id)

    def handler_marks_failed(endpoint, params):
        if endpoint == "retrieve_checkout_session":
            with db.begin() as conn:
                conn.execute(sa.text("UPDATE registrations SET processing_status = 'failed' WHERE id = :id"),
                             {"id": reg_id})

    stripe_server.before_request(handler_marks_failed)
    report = reconcile.run(db, now=now, gateway=gateway, trigger="cli")

    assert registration(db, reg_id)["processing_status"] == "failed"
    [item] = items(db)
    assert (item["kind"], item["action"]) == ("paid_but_failed", "manual_review")
    assert five(report.five()) == (1, 1, 1, 0, 1)


def _one_of_each(db, stripe_server, now):
    """A pending row that needs fixing and a failed one that needs a person."""
    pending, failed = str(uuid.uuid4()), str(uuid.uuid4())
    with db.begin() as conn:
        add_registration(conn, registration_id=pending, session_id="cs_test_fixme", created_at=now - DAY)
        add_registration(conn, registration_id=failed, session_id="cs_test_review", status="failed",
                         created_at=now - DAY)
    stripe_server.add_session(id="cs_test_fixme", created=ts(now - DAY), client_reference_id=pending)
    stripe_server.add_session(id="cs_test_review", created=ts(now - DAY), client_reference_id=failed)
    return pending, failed


def test_second_run_fixes_nothing_twice_and_opens_no_second_item(db, stripe_server, gateway, now):
    pending, _ = _one_of_each(db, stripe_server, now)
    first = reconcile.run(db, now=now, gateway=gateway, trigger="cli")
    completed_at = registration(db, pending)["completed_at"]
    second = reconcile.run(db, now=now + timedelta(minutes=5), gateway=gateway, trigger="cli")

    assert five(first.five()) == (2, 2, 2, 1, 1)
    assert five(second.five()) == (2, 2, 1, 0, 1)  # the open item is still there, still counted
    assert registration(db, pending)["completed_at"] == completed_at
    all_items = items(db)
    assert [(i["kind"], i["run_id"]) for i in all_items] == [
        ("paid_but_pending", first.run_id), ("paid_but_failed", first.run_id)]
    assert all_items[1]["last_seen_run_id"] == second.run_id
    assert second.open_review_items == 1


def test_a_resolved_mismatch_is_not_reopened(db, stripe_server, gateway, now):
    _one_of_each(db, stripe_server, now)
    reconcile.run(db, now=now, gateway=gateway, trigger="cli")
    with db.begin() as conn:
        conn.execute(sa.text("""UPDATE reconciliation_items SET resolved_at = now(), resolved_by = 'ana',
                                resolution_note = 'refunded' WHERE action = 'manual_review'"""))
    again = reconcile.run(db, now=now, gateway=gateway, trigger="cli")
    assert again.manual_review_needed == 0 and again.already_resolved == 1
    assert len(items(db)) == 2 and not again.needs_person


def test_dry_run_records_would_do_and_changes_no_registration(db, stripe_server, gateway, now):
    pending, failed = _one_of_each(db, stripe_server, now)
    report = reconcile.run(db, now=now, gateway=gateway, dry_run=True, trigger="cli")

    assert registration(db, pending)["processing_status"] == "pending"
    assert registration(db, failed)["processing_status"] == "failed"
    assert five(report.five()) == (2, 2, 2, 1, 1)
    [run] = runs(db)
    assert run["dry_run"] and run["status"] == "completed"
    assert [(i["kind"], i["action"], i["dry_run"], i["resolved_at"]) for i in items(db)] == [
        ("paid_but_pending", "auto_fixed", True, None), ("paid_but_failed", "manual_review", True, None)]
    assert report.open_review_items == 0  # would-do items are not in the review queue

    real = reconcile.run(db, now=now, gateway=gateway, trigger="cli")  # dry items do not block it
    assert five(real.five()) == (2, 2, 2, 1, 1)
    assert registration(db, pending)["processing_status"] == "completed"


def test_pagination_over_250_sessions(db, stripe_server, gateway, now):
    sessions, rows = [], []
    for n in range(260):
        reg_id = str(uuid.uuid4())
        sessions.append(checkout_session(id=f"cs_test_page_{n:03d}", created=ts(now - 3 * DAY) + n,
                                         client_reference_id=reg_id))
        rows.append({"id": reg_id, "sid": f"cs_test_page_{n:03d}", "created": now - 3 * DAY})
    sessions[0]["amount_total"] = 9900  # the oldest session, on the last page
    stripe_server.add_sessions(sessions)
    with db.begin() as conn:
        conn.execute(sa.text("""INSERT INTO registrations (id, stripe_checkout_session_id, email,
                                processing_status, amount_total, currency, created_at, completed_at)
                                VALUES (:id, :sid, 'x@example.com', 'completed', 2500, 'eur', :created, :created)"""),
                     rows)

    report = reconcile.run(db, now=now, gateway=gateway, trigger="cli")

    assert report.sessions_checked == 260 and report.pages_read == 3
    assert stripe_server.counts["list_checkout_sessions"] == 3
    assert five(report.five()) == (260, 260, 1, 0, 1)
    assert [(i["kind"], i["stripe_checkout_session_id"]) for i in items(db)] == [
        ("amount_mismatch", "cs_test_page_000")]
    [run] = runs(db)
    assert (run["pages_read"], run["sessions_checked"], run["stripe_requests"]) == (3, 260, 3)


def test_a_429_is_backed_off_and_the_run_succeeds(db, stripe_server, gateway, now):
    _one_of_each(db, stripe_server, now)
    stripe_server.fail_next(2, status=429, endpoint="list_checkout_sessions")
    report = reconcile.run(db, now=now, gateway=gateway, trigger="cli")
    assert report.status == "completed" and five(report.five()) == (2, 2, 2, 1, 1)
    assert stripe_server.counts["list_checkout_sessions"] == 3
    assert report.stripe_requests == 4  # 2 answered 429, the list, one re-read for the fix


def test_rate_limit_that_never_ends_fails_the_run(db, stripe_server, now):
    _one_of_each(db, stripe_server, now)
    stripe_server.fail_next(50, status=429)
    gateway = gateway_from_settings(rate_limit_retries=2, rate_limit_backoff_s=0.01)
    with pytest.raises(StripeUnavailable, match="429"):
        reconcile.run(db, now=now, gateway=gateway, trigger="cli")
    [run] = runs(db)
    assert run["status"] == "failed" and "429" in run["error"]
    assert registration(db, _pending_id(db))["processing_status"] == "pending"


def _pending_id(db):
    with db.connect() as conn:
        return conn.execute(sa.text("SELECT id FROM registrations WHERE processing_status = 'pending'")).scalar()


def test_failure_after_the_first_page_is_a_failed_run_and_a_rerun_finishes(db, stripe_server, now):
    for n in range(150):
        stripe_server.add_session(id=f"cs_test_orphan_{n:03d}", created=ts(now - DAY) + n)

    def break_second_page(endpoint, params):
        if endpoint == "list_checkout_sessions" and params.get("starting_after"):
            stripe_server.fail_next(1, status=500)

    stripe_server.before_request(break_second_page)
    gateway = gateway_from_settings(max_network_retries=1)
    with pytest.raises(StripeUnavailable, match="500"):
        reconcile.run(db, now=now, gateway=gateway, trigger="cli")
    [run] = runs(db)
    assert run["status"] == "failed" and run["finished_at"] is not None
    assert run["pages_read"] == 1 and "500" in run["error"]

    stripe_server.faults.reset()
    report = reconcile.run(db, now=now, gateway=gateway, trigger="cli")
    assert report.status == "completed" and report.sessions_checked == 150
    assert report.manual_review_needed == 150


def test_lock_contention_second_run_does_nothing(db, stripe_server, gateway, now):
    _one_of_each(db, stripe_server, now)
    with job_lock(db, "reconcile"):
        with pytest.raises(JobBusy, match="another reconcile run is in progress"):
            reconcile.run(db, now=now, gateway=gateway, trigger="cli")
    assert runs(db) == [] and items(db) == []
    assert sum(stripe_server.counts.values()) == 0
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM job_runs WHERE job = 'reconcile'")).scalar() == "skipped"


# --- check_registrations (used by cleanup) ------------------------------------------------

def test_check_registrations_applies_the_same_rules(db, stripe_server, gateway, now):
    paid, expired, gone, never = (str(uuid.uuid4()) for _ in range(4))
    with db.begin() as conn:
        for reg_id, sid in ((paid, "cs_test_c1"), (expired, "cs_test_c2"), (gone, "cs_test_c3"), (never, None)):
            add_registration(conn, registration_id=reg_id, session_id=sid, created_at=now - 20 * DAY)
    stripe_server.add_session(id="cs_test_c1", created=ts(now - 20 * DAY), client_reference_id=paid)
    stripe_server.add_session(id="cs_test_c2", created=ts(now - 20 * DAY), status="expired")

    report = reconcile.check_registrations(db, gateway, [paid, expired, gone, never], now=now)

    assert {r: (c.session_lookup, c.kind, c.outcome) for r, c in report.checks.items()} == {
        paid: ("found", "paid_but_pending", "fixed"),
        expired: ("found", "expired_but_pending", "fixed"),
        gone: ("missing", None, None),
        never: ("no_session_id", None, None),
    }
    assert report.checks[paid].session["payment_status"] == "paid"
    assert registration(db, paid)["processing_status"] == "completed"
    assert registration(db, expired)["processing_status"] == "expired"
    assert registration(db, gone)["processing_status"] == "pending"
    [run] = runs(db)
    assert run["trigger"] == "cleanup" and run["status"] == "completed"
    assert five(run) == (1, 4, 2, 2, 0)
    assert stripe_server.counts["retrieve_checkout_session"] == 3  # the retrieve is the re-read


def test_check_registrations_dry_run_changes_nothing(db, stripe_server, gateway, now):
    reg_id = str(uuid.uuid4())
    with db.begin() as conn:
        add_registration(conn, registration_id=reg_id, session_id="cs_test_d1", created_at=now - 9 * DAY)
    stripe_server.add_session(id="cs_test_d1", created=ts(now - 9 * DAY))
    report = reconcile.check_registrations(db, gateway, [reg_id], now=now, dry_run=True)
    assert report.checks[reg_id].outcome == "would_fix"
    assert registration(db, reg_id)["processing_status"] == "pending"


# --- the command line --------------------------------------------------------------------

def test_cli_json_and_exit_code_3_when_a_person_is_needed(db, stripe_server, capsys):
    _one_of_each(db, stripe_server, datetime.now(timezone.utc))
    code = cli(["reconcile", "--json", "--lookback-days", "3"])
    out = json.loads(capsys.readouterr().out)
    assert code == 3
    assert {k: out[k] for k in ("stripe_payments_found", "local_registrations_found", "mismatches_detected",
                                "auto_fixed_count", "manual_review_needed")} == {
        "stripe_payments_found": 2, "local_registrations_found": 2, "mismatches_detected": 2,
        "auto_fixed_count": 1, "manual_review_needed": 1}
    assert out["run_id"] == runs(db)[0]["id"]
    assert runs(db)[0]["lookback_days"] == 3 and runs(db)[0]["trigger"] == "cli"


def test_cli_exit_0_when_all_is_well(db, stripe_server, capsys):
    reg_id = str(uuid.uuid4())
    with db.begin() as conn:
        add_registration(conn, registration_id=reg_id, session_id="cs_test_ok", status="completed",
                         created_at=datetime.now(timezone.utc) - DAY)
    stripe_server.add_session(id="cs_test_ok", created=ts(datetime.now(timezone.utc) - DAY))
    assert cli(["reconcile"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["stripe_payments_found", "1"] for line in lines)
    assert any(line.split() == ["mismatches_detected", "0"] for line in lines)


def test_cli_stripe_down_is_a_failed_run_with_a_clear_message(db, stripe_server, monkeypatch, capsys):
    with refused_port() as port:
        monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{port}")
        assert cli(["reconcile"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach Stripe at http://127.0.0.1" in err and "Traceback" not in err
    assert "(Connection refused)" in err and "support@stripe.com" not in err
    [run] = runs(db)
    assert run["status"] == "failed" and "cannot reach Stripe" in run["error"]


def test_cli_bad_key_is_a_configuration_error(db, stripe_server, monkeypatch, capsys):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_not_the_right_one")
    assert cli(["reconcile"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "Stripe refused the API key" in line and "check STRIPE_API_KEY" in line
    assert runs(db)[0]["status"] == "failed"


def test_cli_missing_key_is_a_configuration_error(db, stripe_server, monkeypatch, capsys):
    monkeypatch.delenv("STRIPE_API_KEY")
    assert cli(["reconcile"]) == 2
    assert "STRIPE_API_KEY is not set" in capsys.readouterr().err
    assert runs(db) == []


def test_cli_busy(db, stripe_server, capsys):
    with job_lock(db, "reconcile"):
        assert cli(["reconcile"]) == 1
    assert "another reconcile run is in progress" in capsys.readouterr().err
    assert runs(db) == []


def test_cli_rejects_a_bad_lookback(db, stripe_server, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(["reconcile", "--lookback-days", "0"])
    assert exit_info.value.code == 2
