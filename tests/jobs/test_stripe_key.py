"""A live Stripe key goes only over https to api.stripe.com; anything else stops with exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.errors import ConfigError
from core.settings import get_settings, live_key_destination_problem
from devharness.http_sink import HttpSink
from jobs.stripe_gateway import StripeGateway, gateway_from_settings

LIVE = "sk_live_51ExampleExampleExample"

@pytest.mark.parametrize("key, base, refused", [
    (LIVE, None, False),                                  # Stripe itself
    (LIVE, "https://api.stripe.com", False),
    (LIVE, "https://api.stripe.com/", False),
    (LIVE, "https://api.stripe.com:443", False),
    ("rk_live_51Example", "https://api.stripe.com", False),
    (LIVE, "http://api.stripe.com", True),                # plain http
    (LIVE, "http://127.0.0.1:12111", True),               # a test server
    (LIVE, "https://api.stripe.com.evil.example", True),
    (LIVE, "https://api.stripe.com@evil.example", True),
    (LIVE, "https://user@api.stripe.com", True),
    (LIVE, "https://api.stripe.com:8443", True),
    (LIVE, "https://files.stripe.com", True),
    ("rk_live_51Example", "http://localhost:8080", True),
    ("sk_test_51Example", "http://127.0.0.1:12111", False),  # test keys may go to a local server
    (None, "http://127.0.0.1:12111", False),
])
def test_where_a_live_key_may_go(key, base, refused):
    assert (live_key_destination_problem(key, base) is not None) == refused

def test_settings_refuse_a_live_key_for_another_host(monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", LIVE)
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:12111")
    with pytest.raises(ConfigError) as info:
        get_settings()
    message = str(info.value)
    assert message.startswith("STRIPE_API_BASE:") and "\n" not in message
    assert "only sent over https to api.stripe.com" in message
    assert LIVE not in message  # the key itself is never printed

def test_a_gateway_built_by_hand_refuses_too():
    with pytest.raises(ConfigError, match="live Stripe key"):
        StripeGateway(LIVE, api_base="http://127.0.0.1:12111")
    assert gateway_from_settings(get_settings(STRIPE_API_KEY="sk_test_x",
                                              STRIPE_API_BASE="http://127.0.0.1:1")).api_base == "http://127.0.0.1:1"

@pytest.mark.parametrize("command", [["reconcile"], ["cleanup"]])
def test_commands_stop_with_exit_2_and_send_nothing(database_url, monkeypatch, command):
    with HttpSink() as sink:
        env = {"STRIPE_API_KEY": LIVE, "STRIPE_API_BASE": sink.base_url}

        result = subprocess.run([sys.executable, "-m", "jobs", *command], capture_output=True, text=True,
                                env={**os.environ, **env}, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "only sent over https to api.stripe.com" in lines[0]
    assert "Traceback" not in result.stderr and LIVE not in result.stderr + result.stdout
    assert sink.received == []  # the key never left the process
