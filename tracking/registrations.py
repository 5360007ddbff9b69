"""What the four Checkout Session events do to the app's registrations (the
pending-registration flow), inside the caller's transaction.

A session belongs to the registration whose ``stripe_checkout_session_id`` it is, else to
the one its ``client_reference_id`` names (the app sends the registration id there). The
registration row is locked, then changed only while it is still 'pending'.

| event | session | registration |
| --- | --- | --- |
| checkout.session.completed | payment_status paid / no_payment_required | completed, amount, currency, session id |
| checkout.session.completed | payment_status unpaid (delayed method) | stays pending; amount, session id noted |
| checkout.session.async_payment_succeeded | | completed, amount, currency, session id |
| checkout.session.async_payment_failed | | failed |
| checkout.session.expired | | expired |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from sqlalchemy.engine import Connection

from core import checkout
from core.error_policy import PayloadError
from core.stripe_api import PAYMENT_STATUSES
from tracking.tracker import SQL

COMPLETED = "checkout.session.completed"
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
ASYNC_FAILED = "checkout.session.async_payment_failed"
EXPIRED = "checkout.session.expired"
CHECKOUT_EVENT_TYPES = (COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED, EXPIRED)
PAID_STATUSES = checkout.PAID_STATUSES


class EventValidationError(PayloadError):
    """The event lacks a field its processing needs, or has one of the wrong kind."""


class RegistrationNotFound(PayloadError, LookupError):
    """A paid session matches no registration: category ``validation`` (the error policy),
    left for a person, who retries it from the monitor once the registration exists."""


@dataclass(frozen=True)
class Outcome:
    """What processing did; ``label`` is stored in webhook_events.outcome."""

    label: str
    registration_id: str | None = None


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    client_reference_id: str | None
    payment_status: str | None
    amount_total: int | None
    currency: str | None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> "CheckoutSession":
        event_id = event.get("id")
        data = event.get("data")
        session = data.get("object") if isinstance(data, Mapping) else None
        if not isinstance(session, Mapping):
            raise EventValidationError(f"event {event_id}: data.object is missing or not an object")
        kind = session.get("object", "checkout.session")
        if kind != "checkout.session":
            raise EventValidationError(f"event {event_id}: data.object is a {kind!r}, not a checkout.session")
        session_id = session.get("id")
        if not isinstance(session_id, str) or not session_id.strip():
            raise EventValidationError(f"event {event_id}: data.object.id (the session id) is missing")
        payment_status = session.get("payment_status")
        if payment_status is not None and payment_status not in PAYMENT_STATUSES:
            raise EventValidationError(f"event {event_id}: unknown payment_status {payment_status!r}")
        amount = session.get("amount_total")
        if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool) or amount < 0):
            raise EventValidationError(f"event {event_id}: amount_total {amount!r} is not a whole "
                                       "non-negative number of minor units")
        currency = session.get("currency")
        if currency is not None and not isinstance(currency, str):
            raise EventValidationError(f"event {event_id}: currency {currency!r} is not a string")
        reference = session.get("client_reference_id")
        return cls(session_id, reference if isinstance(reference, str) else None,
                   payment_status, amount, currency.lower() if currency else None)

    @property
    def reference_uuid(self) -> str | None:
        """client_reference_id when it is a registration id (a UUID), else None."""
        return checkout.registration_id(self.client_reference_id)


def apply_event(conn: Connection, event: Mapping[str, Any]) -> Outcome:
    """Apply one Stripe event to the registrations; other event types are ignored."""
    event_type = event.get("type")
    if event_type not in CHECKOUT_EVENT_TYPES:
        return Outcome("ignored")
    session = CheckoutSession.from_event(event)
    if event_type == COMPLETED and session.payment_status is None:
        raise EventValidationError(f"event {event.get('id')}: data.object.payment_status is missing")

    paid = event_type == ASYNC_SUCCEEDED or (event_type == COMPLETED and session.payment_status in PAID_STATUSES)
    registration = _find_registration(conn, session)
    if registration is None:
        if paid:
            raise RegistrationNotFound(
                f"paid checkout session {session.id} matches no registration "
                f"(client_reference_id {session.client_reference_id!r})")
        return Outcome("no_registration")

    which = {"registration_id": registration["id"], "session_id": session.id}
    seen = {**which, "amount_total": session.amount_total, "currency": session.currency}
    if paid:
        # A paid session completes its pending registration even if the app had since
        # started another session for it: the customer paid, and the paid one is recorded.
        if checkout.complete_registration(conn, registration_id=registration["id"], session_id=session.id,
                                          amount_total=session.amount_total, currency=session.currency):
            return Outcome("registration_completed", registration["id"])
        return Outcome(f"registration_already_{registration['processing_status']}", registration["id"])
    if registration["stripe_checkout_session_id"] not in (None, session.id):
        # An abandoned earlier session expiring or failing says nothing about the current one.
        return Outcome("other_session_ignored", registration["id"])
    if event_type == COMPLETED:
        return _conditional(conn, "note_checkout_details", seen, registration, "awaiting_payment")
    if event_type == ASYNC_FAILED:
        return _conditional(conn, "fail_registration", seen, registration, "registration_failed")
    return _conditional(conn, "expire_registration", which, registration, "registration_expired")


def _find_registration(conn: Connection, session: CheckoutSession) -> Mapping[str, Any] | None:
    """The session's registration by checkout.match_registration's rule, locked."""
    return checkout.match_registration(
        session.id, session.client_reference_id,
        by_session_id=lambda sid: SQL.execute(conn, "registration_by_session", session_id=sid).mappings().first(),
        by_id=lambda rid: SQL.execute(conn, "registration_by_id", registration_id=rid).mappings().first())


def _conditional(conn: Connection, query: str, params: dict, registration: Mapping[str, Any],
                 label: str) -> Outcome:
    changed = SQL.execute(conn, query, **params).first() is not None
    if changed:
        return Outcome(label, registration["id"])
    return Outcome(f"registration_already_{registration['processing_status']}", registration["id"])
