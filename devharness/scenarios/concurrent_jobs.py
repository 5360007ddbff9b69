"""A job run twice at once, as on two machines: two ``retry`` processes over the same failed
events, two ``schedule`` processes firing the same job."""

from __future__ import annotations

import json
import time
from typing import Any

from core.sql import load_package
from devharness.scenarios.steps import (
    SECRET,
    WEBHOOK_PATH,
    ScenarioResult,
    add_pending_registrations,
    count_outcomes,
    jobs_command,
    paid_checkouts,
    receiver_process,
    scratch_engine,
)

SQL = load_package("devharness.scenarios", "steps.sql", "concurrent_jobs.sql")


def _json_report(log: str) -> dict[str, Any]:
    """The JSON summary a ``--json`` job printed (the first object in its output)."""
    start = log.find("{")
    return json.JSONDecoder().raw_decode(log, start)[0] if start >= 0 else {}


def two_retries(database_url: str, *, events: int = 300, workers: int = 2, concurrency: int = 4) -> ScenarioResult:
    """Two ``python -m jobs retry`` processes started together (the schedule's and a person's)
    over the same ``events`` failed events due for a retry, through a real receiver: each
    event must be re-delivered once (the two runs' deliveries add up to ``events``) and
    completed by exactly one attempt."""
    engine = scratch_engine(database_url)
    registrations, batch, ids = paid_checkouts(events, "evt_tworetry_")
    try:
        add_pending_registrations(engine, registrations, failed_events=batch)
        receiver, url = receiver_process(database_url, workers=workers)
        with receiver:
            env = {"MONITOR_REPLAY_URL": url + WEBHOOK_PATH, "STRIPE_WEBHOOK_SECRET": SECRET}
            processes = [jobs_command(database_url, "retry", "--concurrency", str(concurrency), "--json",
                                      extra_env=env) for _ in range(2)]
            started = time.monotonic()
            for process in processes:  # both started before either is waited for: they overlap
                process.start()
            try:
                exits = [process.wait(300) for process in processes]
                reports = [_json_report(process.log()) for process in processes]
            finally:
                for process in processes:
                    process.close()
            took = time.monotonic() - started
        result = count_outcomes(engine, f"two retry processes at once over {events} failed events", ids, registrations)
        delivered = [int(r.get("delivered") or 0) for r in reports]
        # An event delivered by both runs shows as more deliveries than events (the second
        # would be answered "duplicate" and leave no attempt behind).
        result.duplicated += max(sum(delivered) - events, 0)
        result.recover_s = took if result.ok else None
        result.detail.update(exits=exits, delivered_by_each=delivered,
                             busy=[int(r.get("busy") or 0) for r in reports])
        return result
    finally:
        engine.dispose()


def two_schedulers(database_url: str, *, fire_times: int = 2, job: str = "health-snapshot") -> ScenarioResult:
    """Two ``python -m jobs schedule`` processes (two machines) with ``job`` due every minute,
    kept running over ``fire_times`` minute boundaries: each fire time must run the job once.
    Takes about ``fire_times`` minutes (cron times have minute resolution): bench only."""
    from datetime import datetime, timezone

    engine = scratch_engine(database_url)
    env = {"MONITOR_SCHEDULE": f"{job}=* * * * *", "MONITOR_SCHEDULE_TIMEZONE": "UTC"}
    started = datetime.now(timezone.utc)
    processes = []
    for n in range(2):
        process = jobs_command(database_url, "schedule", extra_env=env)
        process.name = f"schedule-{n}"
        processes.append(process.start())
    try:
        # until the fire_times-th minute boundary after the start has passed, plus the run
        boundary = (started.replace(second=0, microsecond=0).timestamp() + 60 * fire_times)
        time.sleep(max(0.0, boundary - time.time()) + 8.0)
        alive = [process.popen.poll() is None for process in processes]
    finally:
        exits = [process.stop() for process in processes]
        logs = [process.log_tail(300) for process in processes]
        for process in processes:
            process.close()
    runs = {r["status"]: r["n"] for r in SQL.all(engine, "job_runs_since", job=job, since=started)}
    engine.dispose()
    total = sum(runs.values())
    return ScenarioResult(
        f"two schedule processes, {job} due every minute, {fire_times} fire times",
        before=fire_times, after=min(total, fire_times), lost=max(fire_times - total, 0),
        duplicated=max(total - fire_times, 0), stuck=runs.get("running", 0), recover_s=None if total < fire_times else 0.0,
        detail={"runs": runs, "both_alive": all(alive), "exits": exits,
                "logs": "" if total == fire_times else " / ".join(logs)})
