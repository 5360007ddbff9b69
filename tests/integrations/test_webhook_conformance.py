"""The conformance suite (tests/support/webhook_conformance.py) against both receivers the project
ships: the reference receiver under uvicorn and the Supabase Edge Function under Deno. Each
case's expected answers, rows, attempts, categories and registration outcomes are the same
data for both, so passing both means both behave alike."""

from __future__ import annotations

import pytest

from devharness import ManagedProcess
from devharness.edge_function import deno_binary, edge_function_process, function_url
from devharness.scenarios.steps import receiver_process
from tests.support.webhook_conformance import CASES, WEBHOOK_SECRET, problems, run_case

EDGE_PATH = "/functions/v1/stripe-webhook"  # Supabase's path; the function answers any


class PythonReceiver:
    """``uvicorn tracking.receiver:app`` on a loopback socket (a new one after each restart)."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self.process: ManagedProcess | None = None
        self.url = ""

    def start(self) -> None:
        self.process, base = receiver_process(self.database_url, workers=1,
                                              extra_env={"STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET})
        self.process.start()
        self.url = base + "/stripe/webhook"

    def kill(self) -> None:
        self.process.kill_tree()
        self.process.close()

    def restart(self) -> None:
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.close()


class EdgeFunction(PythonReceiver):
    """``deno run -A integrations/supabase/functions/stripe-webhook/index.ts``."""

    def start(self) -> None:
        self.process = edge_function_process(self.database_url, secret=WEBHOOK_SECRET)
        self.process.start()
        self.url = function_url(self.process) + EDGE_PATH


RECEIVERS = {"python": PythonReceiver, "deno": EdgeFunction}


@pytest.fixture(scope="module", params=sorted(RECEIVERS))
def running(request, database_url):
    if request.param == "deno" and deno_binary() is None:
        pytest.fail("deno is not installed: run `npm ci` in the repository (make test does)")
    target = RECEIVERS[request.param](database_url)
    target.start()
    yield target
    target.stop()


@pytest.fixture
def target(running, db):
    return running


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_receiver_conforms(case, target, db):
    try:
        played = run_case(case, target, db)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- the receiver's log ---\n{target.process.log_tail()}") from None
    assert problems(case, played) == [], f"{played}\n--- the receiver's log ---\n{target.process.log_tail()}"

