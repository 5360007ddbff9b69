"""The receiver's Stripe-Signature check against crafted headers: a 400 with a reason, never a
500 and a traceback, for whatever a client puts in the header (fuzzed with Hypothesis)."""

from __future__ import annotations

import json
import logging
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tracking.test_receiver import SECRET, ServerThread, sign
from tracking.receiver import Receiver

BODY = json.dumps({"id": "evt_crafted", "type": "checkout.session.completed"}).encode()


@pytest.fixture(scope="module")
def server(engine):
    with ServerThread(Receiver(engine=engine, webhook_secret=SECRET)) as running:
        yield running


def digest() -> str:
    return sign(BODY).partition(",v1=")[2]


CRAFTED = {
    "a superscript digit": f"t=\u00b2,v1={digest()}".encode("latin-1"),
    "an Arabic-Indic digit": f"t=\u0663,v1={digest()}".encode(),
    "a 400-digit timestamp": f"t={'9' * 400},v1={digest()}".encode(),
    "a 13-digit timestamp": f"t={int(time.time()) * 1000},v1={digest()}".encode(),
    "a non-ASCII v1 (UTF-8)": f"t={int(time.time())},v1=\u00e9\u00e9".encode(),
    "a non-ASCII v1 (Latin-1)": f"t={int(time.time())},v1=\u00e9\u00ff".encode("latin-1"),
    "a signed timestamp with a sign": f"t=+{int(time.time())},v1={digest()}".encode(),
}


@pytest.mark.parametrize("header", CRAFTED.values(), ids=CRAFTED.keys())
def test_a_crafted_signature_header_gets_400_without_a_traceback(server, db, caplog, header):
    with caplog.at_level(logging.WARNING, logger="tracking.receiver"):
        status, answer = server.request("POST", "/stripe/webhook", BODY,
                                        {"Content-Type": "application/json", "Stripe-Signature": header})
    assert (status, answer["reason"]) == (400, "bad_signature"), answer
    assert not [record for record in caplog.records if record.exc_info]


def test_a_well_formed_header_is_still_accepted(server, db):
    status, answer = server.deliver(BODY)
    assert status != 400, answer


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.one_of(
    st.text(),
    st.builds(lambda t, v: f"t={t},v1={v}", st.text(), st.text()),
    st.builds(lambda t, v: f"t={t},v1={v}", st.from_regex(r"[0-9]{1,500}", fullmatch=True), st.text()),
    # Unicode digits and numbers (superscripts, other scripts' digits) where the timestamp goes.
    st.builds(lambda t, v: f"t={t},v1={v}", st.text(st.characters(categories=("Nd", "No")), min_size=1),
              st.text()),
    st.lists(st.tuples(st.sampled_from(["t", "v1", "v0", "", " t"]), st.text()), max_size=5)
    .map(lambda pairs: ",".join(f"{k}={v}" for k, v in pairs)),
))
def test_the_signature_check_answers_every_header_with_a_reason(header):
    receiver = Receiver(engine=None, webhook_secret=SECRET)
    problem = receiver.signature_problem(BODY, header)
    assert isinstance(problem, str) and problem
