"""Reconciliation's rules: matching a Checkout Session to its registration and classifying
their disagreement. Pure functions of the two sides' facts (no database, no Stripe), so
every rule is a row in a table of test cases; :mod:`jobs.reconcile.reconciler` does the I/O.

The kinds, their actions and severities are :data:`core.checkout.MISMATCH_KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

from core import checkout
from core.checkout import AUTO_FIX_KINDS, format_money, is_paid

# kind -> (action, severity), as core.checkout.MISMATCH_KINDS declares them.
KIND_RULES: Mapping[str, tuple[str, str]] = checkout.MISMATCH_KINDS
__all__ = ["AUTO_FIX_KINDS", "KIND_RULES", "Mismatch", "Registration", "assess", "find_mismatches",
           "index_registrations", "is_paid", "match_registration", "session_facts"]


@dataclass(frozen=True)
class Registration:
    """The local side, as read from ``registrations``."""

    id: str
    stripe_checkout_session_id: str | None
    processing_status: str
    amount_total: int | None = None
    currency: str | None = None
    email: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Registration":
        return cls(id=str(row["id"]), stripe_checkout_session_id=row["stripe_checkout_session_id"],
                   processing_status=row["processing_status"], amount_total=row["amount_total"],
                   currency=row["currency"], email=row["email"], created_at=row["created_at"],
                   completed_at=row["completed_at"])

    def facts(self) -> dict[str, Any]:
        return {
            "registration_id": self.id,
            "stripe_checkout_session_id": self.stripe_checkout_session_id,
            "processing_status": self.processing_status,
            "amount_total": self.amount_total,
            "currency": self.currency,
            "email": self.email,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
        }


def session_facts(session: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Checkout Session a person needs to judge a mismatch."""
    details = session.get("customer_details") or {}
    return {
        "id": session.get("id"),
        "status": session.get("status"),
        "payment_status": session.get("payment_status"),
        "amount_total": session.get("amount_total"),
        "currency": session.get("currency"),
        "client_reference_id": session.get("client_reference_id"),
        "email": details.get("email") or session.get("customer_email"),
        "created": session.get("created"),
        "payment_intent": session.get("payment_intent"),
        "livemode": session.get("livemode"),
    }


@dataclass(frozen=True)
class Mismatch:
    """One disagreement between Stripe and the local table, with both sides' facts."""

    kind: str
    session_id: str | None
    registration_id: str | None
    reason: str
    stripe: dict[str, Any] | None = None
    local: dict[str, Any] | None = None

    @property
    def action(self) -> str:
        return KIND_RULES[self.kind][0]

    @property
    def severity(self) -> str:
        return KIND_RULES[self.kind][1]

    @property
    def auto_fixable(self) -> bool:
        return self.kind in AUTO_FIX_KINDS

    def details(self) -> dict[str, Any]:
        return {"reason": self.reason, "stripe": self.stripe, "local": self.local}


def _money(amount: int | None, currency: str | None) -> str:
    """An amount for a review reason, in the currency's own decimals."""
    return format_money(amount, currency or "???") or "no amount"


def assess(session: Mapping[str, Any] | None, registration: Registration | None) -> Mismatch | None:
    """The mismatch between one session and the registration matched to it, if any.

    ``session`` None means Stripe has no such session; ``registration`` None means no local
    row matched. A registration that records a different session id is not this session's
    (a superseded checkout attempt): the session then counts as having no registration.
    """
    if session is None:
        if registration is not None and registration.processing_status == "completed":
            sid = registration.stripe_checkout_session_id
            reason = (f"registration is completed but Stripe has no Checkout Session {sid}" if sid
                      else "registration is completed but records no Checkout Session")
            return Mismatch("completed_missing_in_stripe", sid, registration.id, reason,
                            None, registration.facts())
        return None

    sid = session.get("id")
    stripe = session_facts(session)
    paid = is_paid(session)
    if registration is not None and registration.stripe_checkout_session_id not in (None, sid):
        if not paid:
            return None  # an abandoned earlier attempt; the registration tracks a later one
        return Mismatch(
            "paid_no_registration", sid, None,
            f"session is paid; its client_reference_id {registration.id} is a registration "
            f"that records another session ({registration.stripe_checkout_session_id})",
            stripe, registration.facts())
    if registration is None:
        if paid:
            ref = session.get("client_reference_id")
            return Mismatch("paid_no_registration", sid, None,
                            f"session is paid ({_money(session.get('amount_total'), session.get('currency'))}) "
                            f"but no registration matches it"
                            + (f" (client_reference_id {ref})" if ref else ""), stripe, None)
        return None

    local = registration.facts()
    status = registration.processing_status
    if paid:
        amount_differs = (registration.amount_total is not None
                          and registration.amount_total != session.get("amount_total"))
        currency_differs = (registration.currency is not None and session.get("currency") is not None
                            and registration.currency.lower() != str(session["currency"]).lower())
        if currency_differs:  # its own reason: a refund in one currency and a charge in another
            return Mismatch("amount_mismatch", sid, registration.id,
                            f"currency differs: Stripe was paid in {str(session['currency']).upper()} "
                            f"({_money(session.get('amount_total'), session.get('currency'))}), "
                            f"registration expects {registration.currency.upper()} "
                            f"({_money(registration.amount_total, registration.currency)})",
                            stripe, local)
        if amount_differs:
            return Mismatch("amount_mismatch", sid, registration.id,
                            f"Stripe was paid {_money(session.get('amount_total'), session.get('currency'))}, "
                            f"registration expects {_money(registration.amount_total, registration.currency)}",
                            stripe, local)
        if status == "pending":
            return Mismatch("paid_but_pending", sid, registration.id,
                            "session is paid but the registration is still pending", stripe, local)
        if status in ("failed", "expired"):
            return Mismatch("paid_but_failed", sid, registration.id,
                            f"session is paid but the registration is {status}", stripe, local)
        return None

    if session.get("status") == "complete":
        # complete but unpaid: a delayed payment method still settling; not a mismatch yet.
        return None
    if status == "completed":
        return Mismatch("completed_not_paid", sid, registration.id,
                        f"registration is completed but the session is {session.get('status')} "
                        f"and {session.get('payment_status')}", stripe, local)
    if session.get("status") == "expired" and status == "pending" \
            and registration.stripe_checkout_session_id == sid:
        # Only a registration that records this very session is expired: one matched by
        # client_reference_id alone may still have another attempt open or paid.
        return Mismatch("expired_but_pending", sid, registration.id,
                        "session expired unpaid but the registration is still pending", stripe, local)
    return None


def match_registration(session: Mapping[str, Any], by_session_id: Mapping[str, Registration],
                       by_id: Mapping[str, Registration]) -> Registration | None:
    """The registration a session belongs to (:func:`core.checkout.match_registration`),
    looked up in a chunk's registrations indexed by :func:`index_registrations`."""
    return checkout.match_registration(session.get("id"), session.get("client_reference_id"),
                                       by_session_id=by_session_id.get, by_id=by_id.get)


def index_registrations(registrations: Iterable[Registration]
                        ) -> tuple[dict[str, Registration], dict[str, Registration]]:
    """The registrations by session id and by id, as :func:`match_registration` takes them."""
    registrations = list(registrations)
    return ({r.stripe_checkout_session_id: r for r in registrations if r.stripe_checkout_session_id},
            {r.id: r for r in registrations})


def find_mismatches(sessions: Iterable[Mapping[str, Any]],
                    registrations: Iterable[Registration]) -> list[Mismatch]:
    """Every mismatch between these sessions and the registrations they may point at."""
    by_session_id, by_id = index_registrations(registrations)
    found = []
    for session in sessions:
        mismatch = assess(session, match_registration(session, by_session_id, by_id))
        if mismatch is not None:
            found.append(mismatch)
    return found
