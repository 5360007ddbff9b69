"""Cleanup step 2: stale pending registrations, checked against Stripe first.

A paid session means the registration is handed to reconciliation (fixed, or queued for a
person), never removed. Only when Stripe confirms the session expired, says there is no such
session, or there never was one, is the row moved to ``registrations_archive`` with the
reason (:mod:`jobs.cleanup.decisions`), and only if it is still pending and unchanged (a
webhook landing meanwhile wins). A session that is open, or complete and awaiting a delayed
payment, can still be paid: the row stays.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from core.errors import ConfigError, JobFailed, MonitorError
from core.sql import load_package
from jobs.cleanup.decisions import SESSION_SEARCH_BEFORE, Decision, SessionIndex, decide, other_mode, search_windows
from jobs.cleanup.run import CleanupRun
from jobs.reconcile.reconciler import check_registrations
from jobs.runtime import error_line
from jobs.stripe_gateway import StripeKeyRejected

SQL = load_package("jobs.cleanup", "registrations.sql")

REGISTRATION_PAGE = 100
FIRST_KEY = (datetime(1, 1, 1, tzinfo=timezone.utc), "00000000-0000-0000-0000-000000000000")


def _is_stripe_failure(exc: BaseException) -> bool:
    """Errors meaning "Stripe did not answer" (the stripe library's or the gateway's own)."""
    return isinstance(exc, MonitorError) or type(exc).__module__.split(".")[0] == "stripe"


def clean_registrations(run: CleanupRun, gateway, api_key_mode: str | None) -> None:
    """Judge every stale pending registration by what Stripe says and apply the decisions.

    Raises JobFailed (after recording what was done) when Stripe stopped answering part way;
    rows not yet checked are left as they are.
    """
    r = run.report
    with run.engine.connect() as conn:
        r.stale_pending_found = SQL.execute(conn, "count_stale_pending", cutoff=r.pending_cutoff).scalar_one()
    run.save()
    if not r.stale_pending_found:
        return
    paid: dict[str, str] = {}  # registration id -> its paid session
    checked = 0
    try:
        _check_account(run, gateway, api_key_mode)
        index = SessionIndex(gateway)
        after = FIRST_KEY
        while True:
            with run.engine.connect() as conn:
                rows = SQL.execute(conn, "stale_pending_page", cutoff=r.pending_cutoff,
                                   after_created_at=after[0], after_id=after[1],
                                   page_size=REGISTRATION_PAGE).all()
            if not rows:
                break
            after = (rows[-1].created_at, str(rows[-1].id))
            for start, end in search_windows(row.created_at for row in rows):
                index.cover(start, end)
            decisions = []
            for row in rows:
                decision = _decide(row, index, api_key_mode)
                decisions.append((row, decision))
                if decision.action == "reconcile":
                    paid[str(row.id)] = decision.session_id
            _apply(run, decisions)
            checked += len(rows)
            index.prune(rows[-1].created_at - SESSION_SEARCH_BEFORE)
            run.save()
            run.progress(f"registrations: {checked:,} of {r.stale_pending_found:,} checked, "
                         f"{r.registrations_archived:,} {'would be ' if r.dry_run else ''}archived")
    except Exception as exc:
        rejected = isinstance(exc, StripeKeyRejected)
        if isinstance(exc, ConfigError) and not rejected or not _is_stripe_failure(exc):
            raise
        # Stop asking: rows not yet checked stay as they are until Stripe answers again.
        r.registrations_unchecked += r.stale_pending_found - checked
        r.error = f"Stripe could not be asked about every stale registration: {error_line(exc)}"
        if rejected:  # a configuration error (exit 2), recorded like any interrupted run
            raise
    if paid:
        _hand_to_reconciliation(run, gateway, paid)
    if r.error:
        raise JobFailed(r.error)


def _check_account(run: CleanupRun, gateway, api_key_mode: str | None) -> None:
    """Refuse to trust "no such session" answers from a key of another Stripe account."""
    known = SQL.scalar(run.engine, "canary_session")
    if not known or other_mode(known, api_key_mode):
        return
    if gateway.retrieve_checkout_session(known) is None:
        raise ConfigError(f"Stripe does not know Checkout Session {known} of a completed registration: "
                          "STRIPE_API_KEY seems to belong to another Stripe account; no registration was removed")


def _decide(row, index: SessionIndex, api_key_mode: str | None) -> Decision:
    session_id = row.stripe_checkout_session_id
    if other_mode(session_id, api_key_mode):  # decided without asking Stripe in vain
        return decide(session_id, None, api_key_mode=api_key_mode)
    own = index.session(session_id) if session_id else None
    return decide(session_id, own, index.by_reference.get(str(row.id), ()), api_key_mode=api_key_mode)


def _apply(run: CleanupRun, decisions: list[tuple[Any, Decision]]) -> None:
    r = run.report
    archive = []
    for row, decision in decisions:
        if decision.action == "archive":
            archive.append({"id": str(row.id), "row_version": row.row_version, "reason": decision.reason,
                            "session_status": decision.session_status,
                            "payment_status": decision.payment_status})
        elif decision.action == "reconcile":
            r.registrations_kept_paid += 1
        elif decision.action == "keep":
            r.registrations_kept_open += 1
            r.kept_reasons[decision.reason] += 1
        else:
            r.registrations_unchecked += 1
            r.kept_reasons[decision.reason] += 1
    if not archive:
        return
    if r.dry_run:
        moved_ids = {item["id"] for item in archive}
    else:
        with run.engine.begin() as conn:
            moved_ids = {str(i) for i in SQL.execute(conn, "archive_registrations", decisions=json.dumps(archive),
                                                     archived_at=run.now, run_id=r.run_id).scalars()}
    for item in archive:
        if item["id"] in moved_ids:
            r.registrations_archived += 1
            r.archive_reasons[item["reason"]] += 1
        else:
            r.changed_meanwhile += 1


def _hand_to_reconciliation(run: CleanupRun, gateway, paid_sessions: dict[str, str]) -> None:
    """Paid in Stripe: reconciliation fixes the row or queues it for a person, judging it
    by the paid session cleanup found (possibly through client_reference_id)."""
    r = run.report
    registration_ids = list(paid_sessions)
    result = check_registrations(run.engine, gateway, registration_ids, now=run.now,
                                 trigger="cleanup", dry_run=r.dry_run, session_ids=paid_sessions,
                                 record=not r.dry_run)  # a dry run leaves no reconciliation run
    r.registrations_fixed = result.auto_fixed_count
    r.registrations_queued = result.manual_review_needed
    r.reconciliation_run_id = result.run_id
    # Anything reconciliation did not classify stays (never removed) and is listed.
    r.paid_unresolved = sorted(rid for rid in registration_ids
                               if (check := result.checks.get(rid)) is None or check.kind is None)
