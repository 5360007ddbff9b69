"""``python -m jobs status``: the verdict the dashboard shows (see :mod:`jobs.health.verdict`).

Exit 0 when healthy, 3 (something needs a person) when degraded or down, so an uptime
checker or a load balancer's script can act on the code alone; ``--json`` prints the verdict
with its reasons and their dashboard links. It only reads, takes no lock and records no run:
a checker may call it every few seconds.
"""

from __future__ import annotations

import argparse

from core.errors import EXIT_NEEDS_PERSON, EXIT_OK
from jobs.health.verdict import status

HELP = "the verdict the dashboard shows: healthy, degraded or down, with the reasons (exit 0 healthy, 3 otherwise)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace, ctx) -> int:
    settings = ctx.settings
    verdict = status(ctx.jobs_engine(), now=ctx.now(), settings=settings)
    base_url = settings.MONITOR_DASHBOARD_URL
    if args.json:
        ctx.print_json(verdict.as_dict(base_url))
    else:
        ctx.say(verdict.headline())
        for reason in verdict.reasons:
            ctx.say(f"  {reason.state:<8}  {reason.summary}  [{reason.link(base_url)}]")
    return EXIT_OK if verdict.healthy else EXIT_NEEDS_PERSON
