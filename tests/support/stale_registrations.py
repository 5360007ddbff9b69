"""Stale pending registrations with their Checkout Sessions in the local Stripe API: the
``mixed`` fixture (one of each kind cleanup tells apart) and cleanup run as the command line
runs it. Shared by cleanup's tests and the registration rollups' tests."""

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core.settings import get_settings
from jobs.cleanup import command as cleanup
from tests.support.factories import add_registration

NOW = datetime.now(timezone.utc).replace(microsecond=0)
STALE = NOW - timedelta(days=10)
FRESH = NOW - timedelta(days=2)


def run_cleanup(db, **options):
    """cleanup.run with the Stripe collaborators the command line builds from the settings."""
    return cleanup.run(db, **cleanup.stripe_from_settings(get_settings()), **options)


def registrations(engine, table="registrations") -> dict:
    with engine.connect() as conn:
        return {str(row["id"]): dict(row) for row in conn.execute(sa.text(f"SELECT * FROM {table}")).mappings()}


def stale_with_session(db, stripe_server, *, status, payment_status=None, amount=2500, created=STALE,
                       reference=True):
    """A pending registration and its Checkout Session in the local Stripe API."""
    session = stripe_server.add_session(status=status, payment_status=payment_status, amount_total=amount,
                                        created=int(created.timestamp()) + 5)
    with db.begin() as conn:
        rid = add_registration(conn, created_at=created, session_id=session["id"])
    if reference:
        stripe_server.state.update_checkout_session(session["id"], client_reference_id=rid)
    return rid, session


@pytest.fixture
def mixed(db, stripe_server):
    """One stale pending registration of each kind cleanup tells apart, and a fresh one."""
    rows = {}
    rows["paid"], _ = stale_with_session(db, stripe_server, status="complete")
    rows["expired"], _ = stale_with_session(db, stripe_server, status="expired")
    rows["open"], _ = stale_with_session(db, stripe_server, status="open")
    rows["awaiting_payment"], _ = stale_with_session(db, stripe_server, status="complete", payment_status="unpaid")
    rows["fresh_expired"], _ = stale_with_session(db, stripe_server, status="expired", created=FRESH)
    with db.begin() as conn:
        rows["no_session"] = add_registration(conn, created_at=STALE - timedelta(hours=3))
        rows["unknown_session"] = add_registration(conn, created_at=STALE, session_id="cs_test_" + "x" * 58)
        rows["completed"] = add_registration(conn, created_at=STALE, status="completed", completed_at=STALE)
    return rows
