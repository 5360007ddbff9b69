"""The production artefacts, checked quickly: the image's Containerfile and build context,
the compose file against the Compose Specification's JSON schema, and the systemd units by
``systemd-analyze verify``. deploy/test-image.sh builds and runs the image for real (slow;
README, "Running in production")."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import REPO

DEPLOY = REPO / "deploy"
# The Compose Specification's schema (github.com/compose-spec/compose-spec, schema/compose-spec.json,
# Apache-2.0), the one docker compose validates against.
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")
PROCESSES = ("dashboard", "schedule", "watch", "receiver")
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Containerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Containerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0], line.split(None, 1)[1] if " " in line else "") for line in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (name, _) in enumerate(steps) if name == "FROM")
    return steps[last_from:]


def test_the_containerfile_uses_known_instructions_and_exec_forms():
    steps = instructions()
    assert {name for name, _ in steps} <= INSTRUCTIONS
    assert steps[0] == ("ARG", "BASE=docker.io/library/debian:bookworm-slim")
    for name, args in steps:
        if name in ("ENTRYPOINT", "CMD"):
            assert isinstance(json.loads(args), list), f"{name} in shell form: signals would go to a shell"
    [healthcheck] = [args for name, args in steps if name == "HEALTHCHECK"]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[-2:] == ["/app/deploy/entrypoint.py", "healthcheck"]


def test_the_image_installs_the_runtime_lock_only_and_runs_unprivileged():
    runs = " ".join(args for name, args in instructions() if name == "RUN")
    assert "--require-hashes" in runs and "-r /tmp/requirements.lock" in runs
    assert "requirements-dev.lock" not in (DEPLOY / "Containerfile").read_text()
    final = final_stage()
    users = [args for name, args in final if name == "USER"]
    assert users and users[-1] not in ("root", "0")
    env = " ".join(args for name, args in final if name == "ENV")
    assert "MONITOR_EMBEDDED=off" in env and "STREAMLIT_SERVER_ADDRESS=0.0.0.0" in env
    [entrypoint] = [json.loads(args) for name, args in final if name == "ENTRYPOINT"]
    assert entrypoint[:2] == ["/usr/bin/tini", "--"] and entrypoint[-1] == "/app/deploy/entrypoint.py"


def context_included(relative: str) -> bool:
    """Whether .dockerignore lets ``relative`` into the build context (last matching rule wins)."""
    included = True
    for rule in (REPO / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/").removeprefix("**/")
        parts = relative.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch(prefix, pattern) for prefix in prefixes) or any(fnmatch(part, pattern) for part in parts):
            included = negated
    return included


def project_imports(folder: str) -> set[str]:
    """The project's own top-level packages that the Python files under ``folder`` import."""
    found = set()
    for path in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            found.update(name.split(".")[0] for name in names if (REPO / name.split(".")[0]).is_dir())
    return found


def test_the_build_context_holds_everything_the_image_imports():
    shipped = {"core", "queries", "tracking", "jobs", "dashboard", "migrations", "local_stripe"}
    for package in shipped:
        assert context_included(f"{package}/__init__.py"), package
        assert project_imports(package) <= shipped, f"{package} imports a package the image does not copy"
    for needed in ("requirements.lock", ".streamlit/config.toml", "deploy/entrypoint.py",
                   "migrations/0001_webhook_events.sql", "dashboard/static/favicon.png", "jobs/health/templates"):
        assert context_included(needed), needed
    for left_out in ("tests/conftest.py", "requirements-dev.lock", ".streamlit/secrets.toml", ".venv/bin/python",
                     "core/__pycache__/db.cpython-311.pyc", "devharness/__init__.py", "bench/queries_bench.py"):
        assert not context_included(left_out), left_out


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_the_compose_file_follows_the_compose_specification():
    jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text())).validate(compose())


def test_the_processes_wait_for_the_migration_and_only_postgresql_keeps_data():
    services = compose()["services"]
    assert set(PROCESSES) | {"migrate", "postgres"} <= set(services)
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["build"] == {"context": "..", "dockerfile": "deploy/Containerfile"}
    for name in PROCESSES:
        service = services[name]
        assert service["command"][0] == name
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert service["environment"]["MONITOR_EMBEDDED"] == "off"
        assert service["env_file"] == ".env" and service["read_only"] is True
    assert services["receiver"]["profiles"] == ["receiver"]
    assert services["watch"]["deploy"]["replicas"] == 2
    assert [name for name, service in services.items() if "volumes" in service] == ["postgres"]
    assert services["postgres"]["image"].startswith("docker.io/library/postgres:")


def test_the_dashboard_reads_through_the_read_only_role():
    data = compose()
    services = data["services"]
    role = re.search(r"CREATE ROLE (\w+)", (REPO / "scripts" / "dashboard_role.sql").read_text())[1]
    assert services["dashboard"]["environment"]["DASHBOARD_DATABASE_URL"].startswith(f"postgresql://{role}:")
    assert services["dashboard"]["depends_on"]["dashboard-role"] == {"condition": "service_completed_successfully"}
    assert (DEPLOY / data["configs"]["dashboard_role_sql"]["file"]).resolve() == REPO / "scripts" / "dashboard_role.sql"


def test_the_env_example_names_only_known_settings():
    from core.settings import Settings

    compose_only = {"POSTGRES_PASSWORD", "DASHBOARD_DB_PASSWORD"}
    names = re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (DEPLOY / "monitor.env.example").read_text(), re.M)
    assert names and set(names) <= set(Settings.model_fields) | compose_only


def units() -> list[Path]:
    return sorted((DEPLOY / "systemd").glob("*.service"))


def test_every_process_has_a_hardened_unit():
    assert [unit.name for unit in units()] == sorted(f"webhook-monitor-{name}.service"
                                                      for name in (*PROCESSES, "migrate"))
    for unit in units():
        text = unit.read_text()
        for line in ("ProtectSystem=strict", "NoNewPrivileges=yes", "EnvironmentFile=/etc/webhook-monitor.env",
                     "User=webhook-monitor", "Environment=MONITOR_EMBEDDED=off"):
            assert line in text.splitlines() or any(l.startswith(line) for l in text.splitlines()), (unit.name, line)
        assert "/srv/webhook-monitor/deploy/entrypoint.py" in text
        if "migrate" not in unit.name:
            assert "Restart=always" in text and "Requires=webhook-monitor-migrate.service" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (apt-get install systemd)")
def test_the_units_pass_systemd_analyze_verify(tmp_path):
    # verify insists that ExecStart's program exists: point the units at this checkout.
    for unit in units():
        text = unit.read_text().replace("/srv/webhook-monitor/.venv/bin/python", sys.executable)
        (tmp_path / unit.name).write_text(text.replace("/srv/webhook-monitor", str(REPO)))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(map(str, tmp_path.iterdir()))],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def production_section() -> str:
    text = (REPO / "README.md").read_text()
    return text.split("## Running in production", 1)[1].split("\n## ", 1)[0]


def test_the_readme_production_section_names_what_the_tests_check():
    section = production_section()
    for name in ("deploy/Containerfile", "deploy/compose.yaml", "deploy/test-image.sh", "make install-prod",
                 "MONITOR_EMBEDDED", "deploy/monitor.env.example", *(unit.name for unit in units())):
        assert name in section, name
    # The image the README's examples run is the one deploy/Containerfile builds.
    assert "registry.example.com" not in (REPO / "README.md").read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="make missing")
def test_the_production_install_takes_the_runtime_lock_alone(tmp_path):
    result = subprocess.run(["make", "-n", "install-prod", f"PROD_VENV={tmp_path / 'venv'}"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--require-hashes -r requirements.lock" in result.stdout
    # No test tools, and nothing fetched beyond the lock (an editable install would fetch setuptools).
    assert "requirements-dev.lock" not in result.stdout and "-e ." not in result.stdout
    assert "stripe-webhook-monitor.pth" in result.stdout and str(REPO) in result.stdout
