"""The shipped Prometheus artefacts (deploy/prometheus/) with Debian's prometheus package:
promtool checks the rules and the example configuration and runs the rules' unit tests
(tests/prometheus/), and a real Prometheus scrapes a running exporter, evaluates the shipped
rules and sends the alert to an Alertmanager stand-in."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from devharness import ManagedProcess, line_ready
from devharness.http_sink import HttpSink
from tests.conftest import REPO
from tests.support.factories import add_event

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
RULES = REPO / "deploy" / "prometheus" / "webhook-monitor.rules.yml"
needs_prometheus = pytest.mark.skipif(PROMTOOL is None or PROMETHEUS is None,
                                      reason="Debian's prometheus package is not installed (apt-get install prometheus)")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


@needs_prometheus
def test_promtool_accepts_the_shipped_rules_and_configuration():
    for rules in sorted((REPO / "deploy" / "prometheus").glob("*.rules.yml")):
        checked = promtool("check", "rules", str(rules))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = promtool("check", "config", "deploy/prometheus/prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_prometheus
def test_the_rules_unit_tests_pass():
    tested = promtool("test", "rules", "tests/prometheus/webhook-monitor.rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@needs_prometheus
def test_a_real_prometheus_scrapes_the_exporter_and_alerts_from_the_shipped_rules(db, tmp_path):
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        add_event(conn, created_at=now - timedelta(minutes=1), status="failed", error="boom",
                  event_type="checkout.session.completed", duration_ms=20)
    exporter = ManagedProcess([sys.executable, "-m", "jobs", "metrics", "--port", "0"], name="metrics", cwd=REPO,
                              stop_timeout_s=20, ready=line_ready(r"serving metrics at http://(\S+)/metrics"))
    with HttpSink() as alertmanager, exporter:
        target = exporter.ready_value.group(1)
        shutil.copy(RULES, tmp_path / RULES.name)
        (tmp_path / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [{RULES.name}]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{alertmanager.port}"]
scrape_configs:
  - job_name: webhook-monitor
    static_configs:
      - targets: ["{target}"]
""")
        server = ManagedProcess(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
             "--web.listen-address=127.0.0.1:0", "--log.level=info"],
            name="prometheus", cwd=tmp_path, stop_timeout_s=20, ready=line_ready("Server is ready to receive"))
        with server:
            deadline = time.monotonic() + 60
            fired: dict[str, dict] = {}
            while time.monotonic() < deadline and "WebhookPaymentEventFailed" not in fired:
                for request in alertmanager.wait_for(len(alertmanager.received) + 1, timeout=2):
                    for alert in request.json():
                        fired[alert["labels"]["alertname"]] = alert
            log = server.log()
    alert = fired.get("WebhookPaymentEventFailed")
    assert alert is not None, f"no alert reached the Alertmanager stand-in; Prometheus said:\n{log[-3000:]}"
    assert alert["labels"]["rule"] == "payment_event_failed" and alert["labels"]["severity"] == "critical"
    assert alert["labels"]["event_type"] == "checkout.session.completed"
    assert alert["annotations"]["summary"] == "1 failed checkout.session.completed event(s): payments may not be recorded"
    assert all(request.path == "/api/v2/alerts" for request in alertmanager.received)
