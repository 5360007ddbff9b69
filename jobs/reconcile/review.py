"""The manual review queue of reconciliation: list open items, show one, resolve one.

``python -m jobs review`` lists the open items (exit 3 while any is open, 0 when none);
``review show ID`` prints both sides' facts; ``review resolve ID --note "..." [--by NAME]``
closes an item. Resolved items stay in ``reconciliation_items`` as history, and
reconciliation does not reopen a mismatch a person resolved. The dashboard's resolve button
calls :func:`resolve_item` with a read-write engine of its own.
"""

from __future__ import annotations

import argparse
import getpass
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy.engine import Engine

from core.errors import EXIT_NEEDS_PERSON, EXIT_OK, ConfigError
from core.sql import Statements, load_package

HELP = "list, show and resolve the reconciliation items that need a person"
SQL = load_package("jobs.reconcile", "review.sql")
MAX_NOTE = 2000


@cache
def queue_sql() -> Statements:
    """The review queue's queries, the very ones the Reconciliation page runs. Loaded on
    first use: the ``queries`` package brings pandas, which ``--help`` should not pay for."""
    return load_package("queries", "reconciliation.sql")


class ItemNotOpen(ConfigError):
    """The item does not exist, or is not an open manual review item."""


@dataclass(frozen=True)
class Resolution:
    item_id: int
    resolved_at: datetime
    resolved_by: str
    note: str


def open_items(engine: Engine, *, limit: int = 200) -> list[dict[str, Any]]:
    """Open manual review items, critical first, then newest."""
    return queue_sql().all(engine, "reconciliation_open_items", limit=limit)


def get_item(engine: Engine, item_id: int) -> dict[str, Any] | None:
    """One item with both sides' facts, whatever its state; None when there is none."""
    return queue_sql().one(engine, "reconciliation_item", item_id=item_id)


def resolve_item(engine: Engine, item_id: int, *, note: str, by: str, now: datetime) -> Resolution:
    """Close an open manual item with a note; ItemNotOpen when it is missing or not open."""
    note = (note or "").strip()
    by = (by or "").strip()
    if not note:
        raise ItemNotOpen("a resolution needs a note saying what was done")
    if len(note) > MAX_NOTE:
        raise ItemNotOpen(f"the note is longer than {MAX_NOTE} characters")
    if not by:
        raise ItemNotOpen("a resolution needs the name of who resolved it")
    with engine.begin() as conn:
        done = SQL.execute(conn, "resolve_item", item_id=item_id, now=now,
                           resolved_by=by, note=note).first()
    if done is None:
        item = get_item(engine, item_id)
        if item is None:
            raise ItemNotOpen(f"there is no reconciliation item {item_id}")
        if item["dry_run"]:
            raise ItemNotOpen(f"item {item_id} was recorded by a dry run; there is nothing to resolve")
        if item["action"] != "manual_review":
            raise ItemNotOpen(f"item {item_id} was auto-fixed; it needs no review")
        raise ItemNotOpen(f"item {item_id} is already resolved ({item['resolved_at']:%Y-%m-%d %H:%M} "
                          f"by {item['resolved_by']}: {item['resolution_note']})")
    return Resolution(item_id, now, by, note)


def _when(value: Any) -> Any:
    """A Stripe timestamp (Unix seconds) or an ISO 8601 time as 'YYYY-MM-DD HH:MM UTC'."""
    from datetime import datetime, timezone

    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value, timezone.utc)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            return value
    except (ValueError, OverflowError, OSError):
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def readable_facts(facts: dict[str, Any]) -> list[tuple[str, Any]]:
    """One side's facts for people: the amount in currency units (with its currency), times
    as UTC dates; everything else as recorded."""
    from core.checkout import format_money

    shown = []
    for key, value in facts.items():
        if key == "currency" and "amount_total" in facts:
            continue  # shown with the amount
        if key == "amount_total":
            value = format_money(value, facts.get("currency")) or "-"
            key = "amount"
        elif key in ("created", "created_at", "completed_at", "expires_at", "updated_at"):
            value = _when(value) if value is not None else "-"
        shown.append((key, "-" if value is None else value))
    return shown


def describe(item: dict[str, Any]) -> list[str]:
    """An item as lines of text: what, both sides' facts, its state."""
    details = item.get("details") or {}
    lines = [f"item {item['id']}: {item['kind']} ({item['severity']}, {item['action'].replace('_', ' ')}"
             f"{', dry run' if item.get('dry_run') else ''})",
             f"  found        {item['created_at']:%Y-%m-%d %H:%M} by run {item['run_id']}"]
    if item.get("last_seen_at"):
        lines.append(f"  last seen    {item['last_seen_at']:%Y-%m-%d %H:%M} by run {item['last_seen_run_id']}")
    lines.append(f"  reason       {details.get('reason', '')}")
    session = item.get("stripe_checkout_session_id")
    lines.append(f"  session      {session or '-'}")
    if session and str(session).startswith(("cs_test_", "cs_live_")):
        mode = "" if str(session).startswith("cs_live_") else "test/"
        lines.append(f"  in Stripe    https://dashboard.stripe.com/{mode}checkout/sessions/{session}")
    lines.append(f"  registration {item.get('registration_id') or '-'}")
    for side, title in (("stripe", "Stripe says"), ("local", "Local row says")):
        facts = details.get(side)
        lines.append(f"  {title}:" + ("" if facts else " (nothing)"))
        for key, value in readable_facts(facts or {}):
            lines.append(f"    {key:<27} {value}")
    if item.get("resolved_at"):
        lines.append(f"  resolved     {item['resolved_at']:%Y-%m-%d %H:%M} by {item['resolved_by']}: "
                     f"{item['resolution_note']}")
    else:
        lines.append("  open: python -m jobs review resolve "
                     f"{item['id']} --note \"what was done\"")
    return lines


# --- command line -------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="review_action", metavar="ACTION")
    listing = actions.add_parser("list", help="list the open items (the default)")
    listing.add_argument("--limit", type=int, default=200, help="show at most N items (default %(default)s)")
    show = actions.add_parser("show", help="show one item with both sides' facts")
    show.add_argument("item_id", type=int, metavar="ID")
    resolve = actions.add_parser("resolve", help="resolve an open item with a note")
    resolve.add_argument("item_id", type=int, metavar="ID")
    resolve.add_argument("--note", required=True, help="what was done (refund, row fixed by hand, ...)")
    resolve.add_argument("--by", default=None, help="who resolved it (default: the current user)")
    for sub in (listing, show, resolve):
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="print a machine-readable summary on stdout")


def main(args: argparse.Namespace, ctx) -> int:
    engine = ctx.jobs_engine()
    action = args.review_action or "list"
    if action == "show":
        item = get_item(engine, args.item_id)
        if item is None:
            raise ItemNotOpen(f"there is no reconciliation item {args.item_id}")
        if args.json:
            ctx.print_json(item)
        else:
            for line in describe(item):
                ctx.say(line)
        return EXIT_OK
    if action == "resolve":
        by = args.by or _current_user()
        done = resolve_item(engine, args.item_id, note=args.note, by=by, now=ctx.now())
        if args.json:
            ctx.print_json({"item_id": done.item_id, "resolved_at": done.resolved_at,
                            "resolved_by": done.resolved_by, "note": done.note})
        else:
            ctx.say(f"item {done.item_id} resolved by {done.resolved_by}")
        return EXIT_OK
    items = open_items(engine, limit=getattr(args, "limit", 200))
    if args.json:
        ctx.print_json({"open_items": items})
    elif not items:
        ctx.say("no open reconciliation items")
    else:
        ctx.say(f"{len(items)} open item(s) (show one: python -m jobs review show ID):")
        for item in items:
            ref = item["stripe_checkout_session_id"] or item["registration_id"] or "-"
            ctx.say(f"  {item['id']:>6}  {item['created_at']:%Y-%m-%d}  {item['severity']:<8} "
                    f"{item['kind']:<28} {ref}  {item.get('reason') or ''}")
    return EXIT_NEEDS_PERSON if items else EXIT_OK


def _current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"

