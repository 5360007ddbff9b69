"""Reconciliation: Stripe's Checkout Sessions against the local registrations.

Webhooks get lost (an endpoint down, a handler that answered 200 before saving, an event
past Stripe's retry window). This job lists the Checkout Sessions created in the last
``lookback_days``, matches each to its registration (by ``stripe_checkout_session_id``,
else by ``client_reference_id``), classifies every disagreement into one of the kinds of
``KIND_RULES``, fixes the two obvious ones itself and queues the rest for a person
(``python -m jobs review``). Each run is one row of ``reconciliation_runs`` with the five
numbers of its report (Stripe payments found, local registrations found, mismatches
detected, auto-fixed, needing manual review); each mismatch one row of
``reconciliation_items``.

Safety:

- Matching and classification are pure (:mod:`jobs.reconcile.rules`: :func:`assess`,
  :func:`find_mismatches`); the rest is I/O around them (:mod:`jobs.reconcile.reconciler`,
  whose :func:`run` is the job). This module is the command line.
- An auto-fix re-reads the session from Stripe, then in ONE transaction updates the row only
  if it is still pending (a webhook that landed meanwhile wins) and records its item, so a
  crash leaves either both or neither, and a re-run finishes the rest.
- A second run fixes nothing twice (a fixed row no longer mismatches) and opens no second
  item for a mismatch already open (a partial unique index; the open item's ``last_seen_*``
  is updated instead). A mismatch a person resolved is not reopened.
- ``dry_run`` records the run and its items as would-do (``dry_run = true``) and changes no
  registration.
- Sessions stream page by page and are processed in chunks, with registrations loaded per
  chunk in one query, so memory stays flat for 100k sessions.
- A run that could not read everything is recorded as failed, never as a success.
"""

from __future__ import annotations

import argparse
import time

from core.errors import EXIT_NEEDS_PERSON, EXIT_OK
from jobs.cli_support import whole_number
from jobs.reconcile.reconciler import FIVE_FIELDS, run
from jobs.reconcile.rules import KIND_RULES

HELP = ("compare Stripe's Checkout Sessions with local registrations: fix the obvious "
        "mismatches, queue the rest for a person")


# --- command line -------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lookback-days", type=whole_number(1, 3650, unit="days"), default=7, metavar="N",
                        help="check Checkout Sessions and registrations created in the last N days "
                        "(default %(default)s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="record what would be done; change no registration")


def main(args: argparse.Namespace, ctx) -> int:
    from jobs.stripe_gateway import gateway_from_settings

    gateway = gateway_from_settings(ctx.settings)
    engine = ctx.jobs_engine()
    started = time.monotonic()
    report = run(engine, now=ctx.now(), gateway=gateway, lookback_days=args.lookback_days,
                 dry_run=args.dry_run, trigger=ctx.trigger)
    if args.json:
        ctx.print_json(report.as_dict())
    else:
        ctx.say(f"reconciliation run {report.run_id}{' (dry run: nothing changed)' if report.dry_run else ''}: "
                f"last {report.lookback_days} days, {report.sessions_checked} sessions in "
                f"{report.pages_read} pages, {report.stripe_requests} Stripe requests, "
                f"{time.monotonic() - started:.1f}s")
        width = max(len(name) for name in FIVE_FIELDS)
        for name, value in report.five().items():
            ctx.say(f"  {name:<{width}}  {value}")
        for kind, count in sorted(report.by_kind.items()):
            ctx.say(f"    {kind}: {count} ({KIND_RULES[kind][0].replace('_', ' ')})")
        if report.already_resolved:
            ctx.say(f"  {report.already_resolved} mismatch(es) already resolved by a person were left closed")
        if report.fixes_superseded:
            ctx.say(f"  {report.fixes_superseded} fix(es) not needed: the registration changed meanwhile")
        if report.open_review_items:
            ctx.say(f"{report.open_review_items} item(s) need a person: python -m jobs review")
    return EXIT_NEEDS_PERSON if report.needs_person else EXIT_OK
