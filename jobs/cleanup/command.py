"""Keep the database lean without losing anything a person could still need.

Three steps, each safe on a live database:

1. Old completed webhook events move to ``webhook_events_archive`` in batches, each one
   short statement (``FOR UPDATE SKIP LOCKED``, a few thousand rows), so the webhook
   handler's inserts never wait long. Failed, pending and processing events are never moved.
2. Stale pending registrations are checked against Stripe first. A paid session means the
   registration is handed to reconciliation (fixed, or queued for a person), never removed.
   Only when Stripe confirms the session expired, says there is no such session, or there
   never was one, is the row moved to ``registrations_archive`` with the reason, and only
   if it is still pending and unchanged (a webhook landing meanwhile wins). A session that
   is open, or complete and awaiting a delayed payment, can still be paid: the row stays.

3. The monitor's own history (job runs, sent alert notifications, sweep runs) older than
   ``--history-days`` (90) is removed (:mod:`jobs.cleanup.history`).

Every run, dry or not, is recorded in ``cleanup_runs`` (and ``job_runs``). Without
``STRIPE_API_KEY`` the run stops before doing anything (exit 2) unless
``--skip-registrations`` is given: no registration is ever removed without asking Stripe.

The steps live in :mod:`jobs.cleanup.events` and :mod:`jobs.cleanup.registrations` (whose
rules are :mod:`jobs.cleanup.decisions`), the run's report and bookkeeping in
:mod:`jobs.cleanup.run`; this module runs the steps and is the command line.
:func:`run` takes its Stripe gateway and the key's mode as arguments;
:func:`stripe_from_settings` builds them from the settings for the command line and the
scheduler.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from core.errors import EXIT_FAILED, EXIT_NEEDS_PERSON, EXIT_OK, ConfigError, JobFailed
from jobs.cleanup import history as cleanup_history
from jobs.cleanup.decisions import key_mode
from jobs.cleanup.events import DEFAULT_BATCH_SIZE, archive_events
from jobs.cleanup.registrations import clean_registrations
from jobs.cleanup.run import (
    DEFAULT_EVENTS_DAYS,
    DEFAULT_PENDING_DAYS,
    JOB,
    MIN_EVENTS_DAYS,
    CleanupReport,
    CleanupRun,
    Progress,
)
from jobs.cli_support import terminal_progress, whole_number
from jobs.runtime import JobRun, error_line, recorded_run

HELP = ("archive old completed webhook events in batches and remove stale pending "
        "registrations that Stripe confirms were never paid")

NO_STRIPE_KEY = ("STRIPE_API_KEY is not set: cleanup asks Stripe before removing any registration. "
                 "Set it, or pass --skip-registrations to archive webhook events only")


def stripe_from_settings(settings, *, skip_registrations: bool = False) -> dict[str, Any]:
    """``gateway`` and ``api_key_mode`` for :func:`run` from the settings: no gateway without
    a key (or when registrations are skipped, so a bad STRIPE_API_BASE cannot stop an
    events-only run)."""
    from jobs.stripe_gateway import gateway_from_settings

    api_key = settings.STRIPE_API_KEY
    gateway = gateway_from_settings(settings) if api_key and not skip_registrations else None
    return {"gateway": gateway, "api_key_mode": key_mode(api_key)}


def run(engine: Engine, *, now: datetime, gateway=None, api_key_mode: str | None = None,
        pending_days: int = DEFAULT_PENDING_DAYS, events_days: int = DEFAULT_EVENTS_DAYS,
        dry_run: bool = False, skip_registrations: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
        trigger: str = "cli", progress: Progress | None = None,
        history_days: int = cleanup_history.DEFAULT_HISTORY_DAYS) -> CleanupReport:
    """Run cleanup under its advisory lock, recorded in cleanup_runs and job_runs.

    ``gateway`` is the Stripe gateway (None when no Stripe key is configured: only a
    ``skip_registrations`` run can go ahead) and ``api_key_mode`` the key's mode ('live',
    'test' or None, see :func:`jobs.cleanup.decisions.key_mode`); :func:`stripe_from_settings`
    builds both. Returns the report; a run Stripe interrupted comes back with status 'failed'
    and its error (rows not checked are left alone). Raises ConfigError (nothing done, the
    run recorded as failed) without a gateway unless ``skip_registrations``, and JobBusy
    when another cleanup holds the lock.
    """
    if pending_days < 1:
        raise ConfigError("--pending-days must be at least 1")
    if events_days < MIN_EVENTS_DAYS:
        raise ConfigError(f"--events-days must be at least {MIN_EVENTS_DAYS}: Stripe may still redeliver or "
                          "resend younger events, and the handler's duplicate check reads webhook_events")
    if not 1 <= batch_size <= 50_000:
        raise ConfigError("--batch-size must be between 1 and 50000")
    if history_days < cleanup_history.MIN_HISTORY_DAYS:
        raise ConfigError(f"--history-days must be at least {cleanup_history.MIN_HISTORY_DAYS}")
    report = CleanupReport(dry_run=dry_run, pending_days=pending_days, events_days=events_days,
                           pending_cutoff=now - timedelta(days=pending_days),
                           events_cutoff=now - timedelta(days=events_days),
                           registrations_skipped=skip_registrations, history_days=history_days)
    cleanup = CleanupRun(engine, report, now=now, trigger=trigger, batch_size=batch_size, progress=progress)
    try:
        with recorded_run(engine, JOB, now=now, trigger=trigger) as job:
            shown = cleanup.progress

            def progress_line(message: str) -> None:  # on a terminal, and in job_runs for the dashboard
                shown(message)
                job.report_progress(message=message)

            cleanup.progress = progress_line
            cleanup.start()
            try:
                if not skip_registrations and gateway is None:
                    raise ConfigError(NO_STRIPE_KEY)
                archive_events(cleanup)
                report.history_pruned = cleanup_history.prune(engine, now=now, days=history_days,
                                                              dry_run=dry_run).as_dict()
                if not skip_registrations:
                    clean_registrations(cleanup, gateway, api_key_mode)
                if not dry_run:
                    cleanup.record_health()
                job.check_session()  # a run whose session (and lock) died on the way is no success
                report.status = "needs_review" if report.needs_person else "completed"
            except BaseException as exc:
                report.status = "failed"
                report.error = report.error or error_line(exc)
                raise
            finally:
                cleanup.save(finished=True)
                _summarise(job, report)
    except JobFailed as exc:
        # A run Stripe interrupted is reported (status 'failed'); a refused key is a
        # configuration error the caller must see (exit 2), and so is a run never started.
        if report.run_id is None or isinstance(exc, ConfigError):
            raise
        report.status = "failed"  # e.g. DatabaseLost found by recorded_run at the very end
        report.error = report.error or error_line(exc)
    return report


def _summarise(job: JobRun, report: CleanupReport) -> None:
    job.summary = {key: value for key, value in report.as_dict().items()
                   if key in ("run_id", "dry_run", "stale_pending_found", "registrations_archived",
                              "registrations_kept_paid", "registrations_queued", "events_archived",
                              "events_matched", "history_pruned", "error")}
    if report.status == "needs_review":
        job.status = "needs_review"


# --- command line -------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="count what would be archived or removed; change nothing (still recorded)")
    parser.add_argument("--pending-days", type=whole_number(), default=DEFAULT_PENDING_DAYS, metavar="N",
                        help=f"pending registrations older than this are checked (default {DEFAULT_PENDING_DAYS})")
    parser.add_argument("--events-days", type=whole_number(), default=DEFAULT_EVENTS_DAYS, metavar="N",
                        help=f"completed events older than this are archived (default {DEFAULT_EVENTS_DAYS}, "
                        f"at least {MIN_EVENTS_DAYS})")
    parser.add_argument("--batch-size", type=whole_number(), default=DEFAULT_BATCH_SIZE, metavar="N",
                        help=f"events moved per short transaction (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--skip-registrations", action="store_true",
                        help="archive webhook events only; leave registrations alone (no Stripe key needed)")
    parser.add_argument("--history-days", type=whole_number(), default=cleanup_history.DEFAULT_HISTORY_DAYS,
                        metavar="N", help="job runs, sent alert notifications and sweep runs older than this are "
                        f"removed (default {cleanup_history.DEFAULT_HISTORY_DAYS}, at least "
                        f"{cleanup_history.MIN_HISTORY_DAYS}; each job's last run and success stay)")


def main(args: argparse.Namespace, ctx) -> int:
    stripe = stripe_from_settings(ctx.settings, skip_registrations=args.skip_registrations)
    with terminal_progress(json_output=ctx.json_output) as progress:
        report = run(ctx.jobs_engine(), now=ctx.now(), **stripe, pending_days=args.pending_days,
                     events_days=args.events_days, dry_run=args.dry_run,
                     skip_registrations=args.skip_registrations, batch_size=args.batch_size,
                     trigger=ctx.trigger, progress=progress, history_days=args.history_days)
    if args.json:
        ctx.print_json(report.as_dict())
    else:
        for line in report.summary_lines():
            ctx.say(line)
    if report.status == "failed":
        return EXIT_FAILED
    return EXIT_NEEDS_PERSON if report.needs_person else EXIT_OK
