"""``python -m jobs demo-data``: realistic synthetic history for the demo and benchmarks.

What it writes, relative to ``now``:

- ``webhook_events``: ``days`` days of events with a daily rhythm (busiest mid-afternoon
  UTC), the four checkout types and the payment intent, charge and customer events around
  them; about 3 % failures of every kind (network, validation, database, Stripe API,
  unknown) with messages carrying ids and numbers; an outage hour with a burst of database
  and network failures; retries (``attempts`` > 1), some failed then recovered;
  long-tailed processing times; a few events stuck in ``processing`` and a few arriving now.
- ``registrations``: one per checkout, in the state its webhook left it (a failed
  ``checkout.session.completed`` leaves it ``pending``, as in real life), plus checkouts
  still open, stale pendings older than a week, and a group for every reconciliation
  mismatch kind (``core.checkout.MISMATCH_KINDS``) within the last week.
- Stripe's side, for the local Stripe server (``python -m local_stripe --state FILE``): the
  Checkout Sessions of the last 30 days (and of every pending or failed registration),
  consistent with the registrations except for the deliberate mismatches, and the checkout
  events Stripe still lists, undelivered ones included.

Rows are computed in SQL from ``generate_series`` with hash-based randomness, so the same
seed and ``now`` give identical data; a second session computes the webhook_events rows and
streams them into the loading one (``EventStream``), and a million events load in a few
minutes on a busy 2-vCPU machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.errors import ConfigError, JobFailed
from core.sql import load_package
from core.stripe_api import API_VERSION
from jobs.cli_support import whole_number
from jobs.reconcile.command import KIND_RULES
from jobs.runtime import recorded_run

# The demo app's webhook endpoint as the local Stripe server lists it (GET /v1/webhook_endpoints).
DEMO_ENDPOINT_URL = "https://demo.example.com/api/stripe-webhook"

HELP = ("load realistic synthetic history (events, registrations, Stripe's side) "
        "for the demo and benchmarks")

DEFAULT_DAYS = 30
DEFAULT_EVENTS_PER_DAY = 800
DEFAULT_SEED = 42
STATE_FILE_NAME = "demo-stripe-state.json"

# Share of first deliveries that fail, and of those the share a later retry fixes: about
# 3 % of events end up failed, the outage hour's burst aside.
FAILURE_RATE = 0.06
RECOVERY_RATE = 0.55
# Stripe lists events for 30 days; the local Stripe server gets that much of its history.
STRIPE_DAYS = 30
# Delivered events older than this stay out of the state file (nothing reads them), so it
# stays a few tens of megabytes; undelivered ones are all there.
STRIPE_RECENT_EVENT_DAYS = 3
# Bounds the state file even for benchmark-sized loads.
MAX_STRIPE_SESSIONS = 50_000
MAX_STRIPE_EVENTS = 20_000
# Every reconciliation mismatch kind (core.checkout.MISMATCH_KINDS); the demo holds a group of each.
MISMATCH_KINDS = tuple(KIND_RULES)

SQL = load_package("jobs.admin", "demo_data.sql")


@dataclass(frozen=True)
class Plan:
    """How many rows of each sort a load writes, derived from its arguments."""

    now: datetime
    days: int
    events_per_day: int
    seed: int
    base_events: int
    burst_events: int
    stuck_events: int
    open_pending: int
    stale_each: int
    mismatch_each: int
    outage_start: datetime

    @classmethod
    def build(cls, *, now: datetime, days: int, events_per_day: int, seed: int) -> "Plan":
        base = days * events_per_day
        return cls(
            now=now, days=days, events_per_day=events_per_day, seed=seed,
            base_events=base,
            burst_events=max(20, events_per_day // 15),
            stuck_events=max(3, base // 20_000),
            open_pending=max(3, events_per_day // 50),
            stale_each=max(2, events_per_day // 400),
            mismatch_each=2 + base // 100_000,
            outage_start=outage_start(now, days),
        )

    def parameters(self) -> dict:
        burst_end = self.base_events + self.burst_events
        stuck_end = burst_end + self.stuck_events
        return {
            "seed": self.seed, "now": self.now, "days": self.days,
            "base_end": self.base_events, "burst_end": burst_end, "stuck_end": stuck_end,
            "total": stuck_end + 5,  # 3 pending and 2 processing events arriving right now
            "outage_start": self.outage_start,
            "failure_rate": FAILURE_RATE, "recovery_rate": RECOVERY_RATE,
            "open_pending": self.open_pending, "stale_each": self.stale_each,
            "mismatch_each": self.mismatch_each,
            "api_version": API_VERSION,
        }


def outage_start(now: datetime, days: int) -> datetime:
    """The outage hour: the latest 13:00 UTC at least 3 h ago (busy time, inside the 24 h view
    most of the day), or 3 h ago when the window is too short for that."""
    now = now.astimezone(timezone.utc)
    latest = now - timedelta(hours=3)
    start = latest.replace(hour=13, minute=0, second=0, microsecond=0)
    if start > latest:
        start -= timedelta(days=1)
    if start < now - timedelta(days=days):
        start = latest.replace(minute=0, second=0, microsecond=0)
    return start


@dataclass
class DemoDataReport:
    seed: int
    days: int
    events_per_day: int
    now: datetime
    outage_start: datetime
    replaced_previous: bool = False
    events: int = 0
    failed_events: int = 0
    registrations: int = 0
    stripe_sessions: int = 0
    stripe_events: int = 0
    stripe_state_path: str | None = None
    mismatches_planted: dict = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


class DemoDataExists(ConfigError):
    """The database already holds rows and --reset was not given (or they are not demo rows)."""


def existing_rows(conn: Connection) -> dict:
    """Row counts of the tables demo-data fills, and one row it did not write (or None)."""
    try:
        return dict(SQL.execute(conn, "demo_rows_present").mappings().one())
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42P01":  # undefined_table
            raise ConfigError("the database has no tables yet: run 'python -m jobs migrate' "
                              "first") from None
        raise


def run(engine: Engine, *, now: datetime, days: int = DEFAULT_DAYS,
        events_per_day: int = DEFAULT_EVENTS_PER_DAY, seed: int = DEFAULT_SEED,
        reset: bool = False, stripe_state_path: Path | str | None = None,
        trigger: str = "cli", progress: Callable[[str], None] | None = None) -> DemoDataReport:
    """Load the demo history in one transaction; write Stripe's side when a path is given.

    Refuses (DemoDataExists) when the tables already hold rows, unless ``reset``; even then
    it replaces only data it wrote itself, never rows of a real application.
    """
    say = progress or (lambda message: None)
    plan = Plan.build(now=now, days=days, events_per_day=events_per_day, seed=seed)
    report = DemoDataReport(seed=seed, days=days, events_per_day=events_per_day, now=now,
                            outage_start=plan.outage_start)
    started = time.monotonic()

    with engine.connect() as conn:
        present = existing_rows(conn)
    _check_replaceable(present, reset)

    say(f"loading {days} days × {events_per_day:,} events/day (seed {seed}) ending "
        f"{now.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC")
    # The run happens now, whatever moment the history ends at (--now).
    with recorded_run(engine, "demo-data", now=datetime.now(timezone.utc), trigger=trigger) as job:
        def step(message: str) -> None:  # on the terminal, and in job_runs for whoever follows the run
            say(message)
            job.report_progress(message=message, force=True)

        with engine.begin() as conn:
            present = existing_rows(conn)  # again, under the job's lock
            _check_replaceable(present, reset)
            if any(present[k] for k in ("events", "registrations", "archived_events",
                                        "archived_registrations")):
                SQL.execute(conn, "clear_demo_rows")
                report.replaced_previous = True
                step("removed the previous demo data")
            for name in ("set_work_mem", "set_maintenance_work_mem", "create_uniform", "create_normal"):
                SQL.execute(conn, name)
            params = plan.parameters()
            # A second session computes the webhook_events rows from its own (identical)
            # staged events meanwhile, and streams them to this one at "writing webhook_events".
            events = EventStream(engine, params)
            events.start()
            steps = [
                ("stage_events", f"computing {plan.base_events + plan.burst_events:,} events"),
                ("settle_events", None),
                ("describe_errors", "writing error messages"),
                ("stage_checkouts", "computing registrations and Checkout Sessions"),
                ("drop_secondary_indexes", None),
                ("pause_rollup_triggers", None),
                ("pause_registration_rollup_triggers", None),
                ("truncate_events", None),
                (events.copy_into, "writing webhook_events"),
                ("insert_attempts", "writing webhook_event_attempts"),
                ("resume_rollup_triggers", None),
                ("rebuild_rollups", "computing the rollups"),
                ("insert_registrations", "writing registrations"),
                ("create_secondary_indexes", "building indexes"),
                ("resume_registration_rollup_triggers", None),
                ("rebuild_registration_rollups", "computing the registration rollups"),
            ]
            try:
                for name, label in steps:
                    step_started = time.monotonic()
                    if callable(name):
                        name(conn)
                    else:
                        SQL.execute(conn, name, **{key: params[key] for key in SQL[name].parameters})
                    if label:
                        step(f"{label} ({time.monotonic() - step_started:.1f} s)")
            finally:
                events.stop()
            SQL.execute(conn, "analyze_loaded")
            summary = SQL.execute(conn, "load_summary").mappings().one()
            report.events = summary["events"]
            report.failed_events = summary["failed_events"]
            report.registrations = summary["registrations"]
            report.mismatches_planted = {kind: plan.mismatch_each for kind in MISMATCH_KINDS}
            pending_file = None
            if stripe_state_path is not None:
                step("building Stripe's side")
                state = stripe_state(conn, now=now)
                report.stripe_sessions = len(state["checkout_sessions"])
                report.stripe_events = len(state["events"])
                # Written beside the target and renamed after the commit, so a failed load
                # never leaves a state file that disagrees with the database.
                pending_file = _write_pending(Path(stripe_state_path), state)
        step("vacuuming")
        with engine.connect() as conn:
            SQL.execute(conn.execution_options(isolation_level="AUTOCOMMIT"), "vacuum_loaded")
        if pending_file is not None:
            os.replace(pending_file, stripe_state_path)
            report.stripe_state_path = str(stripe_state_path)
        report.seconds = round(time.monotonic() - started, 2)
        job.summary = {k: v for k, v in report.as_dict().items() if k != "mismatches_planted"}
    return report


class EventStream:
    """The webhook_events rows, computed by a second session and copied into the loading one.

    The second session stages the same events as the loading session (same statements,
    same parameters: the same rows) in temporary tables of its own, then sends the rows
    with ``COPY ... TO STDOUT`` (copy_events_out) while the loading session parses them and
    writes them with ``COPY ... FROM STDIN`` (copy_events_in): on two cores, staging runs
    beside staging, building payloads beside writing them. It only reads shared tables, so
    the load stays one transaction of the loading session; stopping (a failed or
    interrupted load) closes the second session, which keeps nothing.
    """

    CHUNK_BYTES = 1 << 20

    def __init__(self, engine: Engine, params: dict):
        self.engine = engine
        self.params = params
        self.chunks: queue.Queue = queue.Queue(maxsize=64)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._produce, name="demo-data events", daemon=True)
        self.session = None  # the second session's driver connection, to cancel its statement
        self.lock = threading.Lock()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            if self.session is not None:
                self.session.cancel_safe()  # a statement of minutes at 10M rows: not waited for
        self.thread.join()

    def _put(self, item) -> bool:
        while not self.stopping.is_set():
            try:
                self.chunks.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            with self.engine.connect() as conn:
                with self.lock:
                    self.session = conn.connection.driver_connection
                try:
                    if not self._stream(conn):
                        return  # stopped
                finally:
                    with self.lock:  # back to the pool: no longer ours to cancel
                        self.session = None
                conn.rollback()  # temporary tables only
            self._put(None)
        except BaseException as exc:  # handed to the loading session, which fails the load
            self._put(exc)

    def _stream(self, conn: Connection) -> bool:
        for name in ("set_work_mem", "create_uniform", "create_normal", "stage_events",
                     "settle_events", "describe_errors", "set_api_version"):
            if self.stopping.is_set():
                return False
            SQL.execute(conn, name, **{k: self.params[k] for k in SQL[name].parameters})
        cursor = conn.connection.driver_connection.cursor()
        with cursor, cursor.copy(SQL["copy_events_out"].sql) as copy:
            buffer = bytearray()
            for row in copy:
                buffer += row
                if len(buffer) >= self.CHUNK_BYTES:
                    if not self._put(bytes(buffer)):
                        return False
                    buffer.clear()
            if buffer and not self._put(bytes(buffer)):
                return False
        return True

    def copy_into(self, conn: Connection) -> None:
        """Write the rows into webhook_events (truncated in this transaction) as they come."""
        cursor = conn.connection.driver_connection.cursor()
        with cursor, cursor.copy(SQL["copy_events_in"].sql) as copy:
            while True:
                try:
                    chunk = self.chunks.get(timeout=0.5)
                except queue.Empty:
                    if self.thread.is_alive():
                        continue
                    try:  # what it put just before it ended
                        chunk = self.chunks.get_nowait()
                    except queue.Empty:
                        raise JobFailed("the session computing the events stopped") from None
                if chunk is None:
                    return
                if isinstance(chunk, BaseException):
                    raise JobFailed(f"computing the events failed: {chunk}") from chunk
                copy.write(chunk)


def _check_replaceable(present: dict, reset: bool) -> None:
    counts = (f"{present['events']:,} webhook events and {present['registrations']:,} "
              "registrations")
    if present["foreign_row"]:
        raise DemoDataExists(
            f"the database holds data demo-data did not write (e.g. {present['foreign_row']}); "
            "demo-data only fills an empty database or replaces its own demo data. "
            "Use an empty database (e.g. another MONITOR_DATA_DIR).")
    if not reset and any(present[k] for k in ("events", "registrations", "archived_events",
                                              "archived_registrations")):
        raise DemoDataExists(f"demo data is already loaded ({counts}); "
                             "pass --reset to replace it")


# --- Stripe's side -------------------------------------------------------------------------

def stripe_state(conn: Connection, *, now: datetime) -> dict:
    """The local Stripe server's state: {"checkout_sessions": [...], "events": [...],
    "webhook_endpoints": [the demo app's endpoint, enabled, subscribed to what it needs]}."""
    from core.settings import DEFAULT_SWEEP_EVENT_TYPES, sweep_event_types
    from local_stripe import checkout_session, event, webhook_endpoint

    sessions, events = [], []
    rows = SQL.execute(conn, "stripe_sessions", now=now, stripe_days=STRIPE_DAYS,
                       max_sessions=MAX_STRIPE_SESSIONS).mappings()
    for row in rows:
        paid = row["stripe_payment_status"] == "paid"
        session = checkout_session(
            id=row["session_id"],
            created=row["created"],
            status=row["stripe_status"],
            payment_status=row["stripe_payment_status"],
            amount_total=row["stripe_amount"],
            currency=row["stripe_currency"],
            client_reference_id=str(row["registration_id"]),
            email=row["email"],
            metadata={"registration_id": str(row["registration_id"]), "source": "demo-data"},
            payment_intent=row["payment_intent_id"] if paid or row["delayed_payment"] else None,
            payment_method_types=["sepa_debit"] if row["delayed_payment"] else ["card"],
        )
        if session["customer_details"] is not None:
            session["customer_details"]["name"] = row["name"]
        sessions.append(session)
        if row["undelivered_event_type"]:
            # Stripe sent it; the app never recorded it (no row in webhook_events): the sweep
            # finds these. Most deliveries failed (Stripe still retries them); for a paid
            # session with no registration at all, the endpoint answered 2xx without recording
            # anything, so Stripe counts the event as delivered.
            created = int(now.timestamp()) - 60 if row["stripe_status"] == "open" else (
                row["created"] + (86400 if row["stripe_status"] == "expired" else 240))
            answered_2xx = row["scenario"] == "paid_no_registration"
            events.append(event(
                row["undelivered_event_type"], session,
                id="evt_1" + hashlib.md5(row["session_id"].encode()).hexdigest()[:23],
                created=created, pending_webhooks=0 if answered_2xx else 1,
                delivery_success=None if answered_2xx else False))
    for (payload,) in SQL.execute(conn, "stripe_events", now=now, stripe_days=STRIPE_DAYS,
                                  recent_days=STRIPE_RECENT_EVENT_DAYS, max_events=MAX_STRIPE_EVENTS):
        if payload["pending_webhooks"]:
            payload["_delivery_success"] = False  # the app answered with an error
        events.append(payload)
    events.sort(key=lambda e: (e["created"], e["id"]), reverse=True)
    endpoint = webhook_endpoint(DEMO_ENDPOINT_URL, id="we_demo0000000000000000000",
                                enabled_events=sweep_event_types(DEFAULT_SWEEP_EVENT_TYPES),
                                created=int((now - timedelta(days=90)).timestamp()),
                                description="The demo app's webhook handler")
    return {"checkout_sessions": sessions, "events": events, "webhook_endpoints": [endpoint]}


def _write_pending(path: Path, state: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pending = path.with_name(path.name + ".partial")
    with open(pending, "w", encoding="utf-8") as handle:
        json.dump(state, handle, separators=(",", ":"))
    return pending


def default_state_path(settings) -> Path:
    return Path(settings.MONITOR_DATA_DIR).expanduser() / STATE_FILE_NAME


# --- command line ------------------------------------------------------------------------

def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=whole_number(1, 3650), default=DEFAULT_DAYS,
                        help="days of history ending now (default %(default)s)")
    parser.add_argument("--events-per-day", type=whole_number(1, 2_000_000),
                        default=DEFAULT_EVENTS_PER_DAY,
                        help="webhook events per day (default %(default)s)")
    parser.add_argument("--seed", type=whole_number(0, 2**31 - 1), default=DEFAULT_SEED,
                        help="same seed, same data (default %(default)s)")
    parser.add_argument("--reset", action="store_true",
                        help="replace demo data loaded before (never touches other data)")
    parser.add_argument("--now", type=_timestamp, metavar="TIME",
                        help="end of the history, ISO 8601 (default: the current time)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stripe-state", type=Path, metavar="PATH",
                       help="write Stripe's side here for 'python -m local_stripe --state' "
                       f"(default: MONITOR_DATA_DIR/{STATE_FILE_NAME})")
    where.add_argument("--no-stripe-state", action="store_true",
                       help="do not write Stripe's side (benchmarks)")


def main(args: argparse.Namespace, ctx) -> int:
    if args.days * args.events_per_day > 50_000_000:
        raise ConfigError("--days × --events-per-day must stay within 50,000,000 events")
    engine = ctx.jobs_engine()
    state_path = None if args.no_stripe_state else (
        args.stripe_state or default_state_path(ctx.settings))
    now = args.now or ctx.now()
    report = run(engine, now=now, days=args.days, events_per_day=args.events_per_day,
                 seed=args.seed, reset=args.reset, stripe_state_path=state_path,
                 trigger=ctx.trigger, progress=ctx.say)
    if args.json:
        ctx.print_json(report.as_dict())
        return 0
    share = report.failed_events / report.events if report.events else 0
    ctx.say(f"loaded {report.events:,} webhook events ({share:.1%} failed, outage at "
            f"{report.outage_start:%Y-%m-%d %H:%M} UTC) and {report.registrations:,} "
            f"registrations in {report.seconds:.1f} s")
    if report.stripe_state_path:
        ctx.say(f"Stripe's side: {report.stripe_sessions:,} Checkout Sessions and "
                f"{report.stripe_events:,} events in {report.stripe_state_path}")
        ctx.say(f"serve it with: python -m local_stripe --state {report.stripe_state_path}")
    return 0
