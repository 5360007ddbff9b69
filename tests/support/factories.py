"""Small helpers that write hand-built rows, so a test's data reads like a table."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa


def add_event(conn, *, created_at: datetime, status: str = "completed", event_type: str = "checkout.session.completed",
              duration_ms: int | None = None, error: str | None = None, attempts: int = 1,
              event_id: str | None = None, payload: dict | None = None, livemode: bool = False,
              processing_started_at: datetime | None = None, error_category: str | None = None) -> str:
    """Insert one webhook_events row; returns its stripe_event_id."""
    event_id = event_id or f"evt_{uuid.uuid4().hex[:24]}"
    processed_at = None
    if status in ("completed", "failed") and duration_ms is not None:
        processed_at = created_at + timedelta(milliseconds=duration_ms)
    conn.execute(sa.text("""
        INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload,
            error_message, attempts, created_at, processed_at, processing_duration_ms, livemode,
            processing_started_at, error_category, stripe_created_at)
        VALUES (:id, :type, :status, CAST(:payload AS jsonb), :error, :attempts, :created,
            :processed, :duration, :livemode, :started, :category, :created)"""),
        {"id": event_id, "type": event_type, "status": status,
         "payload": json.dumps(payload or {"id": event_id, "type": event_type, "data": {"object": {}}}),
         "error": error, "attempts": attempts, "created": created_at, "processed": processed_at,
         "duration": duration_ms, "livemode": livemode,
         "started": processing_started_at or (created_at if status == "processing" else None),
         "category": error_category})
    return event_id


def add_registration(conn, *, created_at: datetime, status: str = "pending", session_id: str | None = None,
                     email: str = "someone@example.com", amount_total: int | None = 2500,
                     currency: str | None = "eur", completed_at: datetime | None = None,
                     registration_id: str | None = None) -> str:
    """Insert one registrations row; returns its id."""
    registration_id = registration_id or str(uuid.uuid4())
    conn.execute(sa.text("""
        INSERT INTO registrations (id, stripe_checkout_session_id, email, processing_status,
            amount_total, currency, created_at, completed_at)
        VALUES (:id, :sid, :email, :status, :amount, :currency, :created, :completed)"""),
        {"id": registration_id, "sid": session_id, "email": email, "status": status,
         "amount": amount_total, "currency": currency, "created": created_at, "completed": completed_at})
    return registration_id


def processes_alive(conn, *, at: datetime) -> None:
    """`watch` and `schedule` beat at ``at`` (the verdict counts them as running)."""
    from jobs import heartbeats

    for process in heartbeats.PROCESSES:
        heartbeats.beat(conn, process, now=at, host="test")
