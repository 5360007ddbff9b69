"""The development harness: throwaway database, bound ports, managed processes, environment;
and the repository rules it exists for (no sys.path hacks, scripts stand on their own)."""

from __future__ import annotations

import os
import re
import socket
import sys
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from devharness import (
    ManagedProcess,
    ProcessFailed,
    ThrowawayDatabase,
    empty_tables,
    http_ready,
    line_ready,
    listening_socket,
    patched_env,
    port_ready,
    refused_port,
    running_together,
    socket_url,
    stop_together,
)
from devharness.http_sink import HttpSink
from tests.conftest import REPO
from tests.support.factories import add_event, add_registration

SERVE_ONE_SOCKET = """
import http.server, socket, sys
sock = socket.socket(fileno=int(sys.argv[1]))
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"hello")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(sock.getsockname(), Hello, bind_and_activate=False)
server.socket = sock
print("serving", flush=True)
server.serve_forever()
"""


# --- ports ------------------------------------------------------------------------------

def test_a_listening_socket_queues_a_client_before_anyone_accepts():
    with listening_socket() as sock:
        assert socket_url(sock).startswith("http://127.0.0.1:")
        # Connecting succeeds (the kernel queues it) although nothing has called accept() yet.
        with socket.create_connection(sock.getsockname(), timeout=2):
            pass


def test_a_refused_port_refuses_and_stays_taken():
    with refused_port() as port:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        other = socket.socket()
        with pytest.raises(OSError):
            other.bind(("127.0.0.1", port))  # nobody can start listening there meanwhile
        other.close()


# --- processes --------------------------------------------------------------------------

def test_a_process_is_handed_its_socket_and_answers_on_it():
    sock = listening_socket()
    url = socket_url(sock)
    process = ManagedProcess([sys.executable, "-c", SERVE_ONE_SOCKET, str(sock.fileno())],
                             name="hello", pass_sockets=[sock], ready=http_ready(url))
    with process:
        assert sock.fileno() == -1  # handed over: this process's copy is closed
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.read() == b"hello"
        assert "serving" in process.log()
    assert process.returncode is not None
    with pytest.raises(ConnectionRefusedError):  # it took its port with it
        socket.create_connection(sock_address(url), timeout=2)


def sock_address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def test_a_process_that_exits_early_fails_with_its_output():
    process = ManagedProcess([sys.executable, "-c", "print('no config here'); raise SystemExit(3)"],
                             name="broken", ready=line_ready("never printed"))
    with pytest.raises(ProcessFailed, match=r"(?s)broken exited with code 3 .*no config here"):
        process.start()
    process.close()


def test_a_process_that_never_answers_times_out_and_is_stopped():
    with refused_port() as port:
        process = ManagedProcess([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                                 name="silent", ready=port_ready(port), timeout_s=0.5)
        with pytest.raises(ProcessFailed, match=r"(?s)not ready .* within 0.5 s.*up"):
            process.start()
    assert process.returncode is not None  # stopped, not left behind
    process.close()


def test_a_process_ignoring_sigterm_is_killed_after_the_stop_timeout():
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    with ManagedProcess([sys.executable, "-c", script], ready=line_ready("^ready$"), stop_timeout_s=0.3) as process:
        assert process.ready_value.group(0) == "ready"
    assert process.returncode == -9


def test_line_ready_hands_over_what_the_process_announced():
    with ManagedProcess([sys.executable, "-c", "print('listening on http://127.0.0.1:4242', flush=True); input()"],
                        ready=line_ready(r"listening on (\S+)")) as process:
        assert process.ready_value.group(1) == "http://127.0.0.1:4242"


def test_the_environment_is_given_to_the_process_with_removals():
    with patched_env(DEVHARNESS_KEEP="kept", DEVHARNESS_DROP="dropped"):
        process = ManagedProcess(
            [sys.executable, "-c", "import os; print(os.environ.get('DEVHARNESS_KEEP'), "
             "os.environ.get('DEVHARNESS_DROP'), os.environ.get('DEVHARNESS_ADD'))"],
            extra_env={"DEVHARNESS_DROP": None, "DEVHARNESS_ADD": "added"})
        with process:
            assert process.wait(10) == 0
            assert process.log().split() == ["kept", "None", "added"]


# Waits for SIGTERM, says so and exits 0 (as `jobs watch` does), after announcing itself.
POLITE = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (print("bye", flush=True), sys.exit(0)))
print("listening as", sys.argv[1], flush=True)
time.sleep(60)
"""


def test_processes_run_together_are_each_ready_and_all_stopped_at_the_end():
    processes = [ManagedProcess([sys.executable, "-c", POLITE, name], name=name,
                                ready=line_ready(r"listening as (\w+)"))
                 for name in ("first", "second")]
    with running_together(processes) as running:
        assert [process.ready_value.group(1) for process in running] == ["first", "second"]
        assert all(process.returncode is None for process in running)
        codes = stop_together(running)
        logs = [process.log() for process in running]
    assert codes == [0, 0]
    assert all("bye" in log for log in logs)  # each handled its SIGTERM
    assert [process.returncode for process in processes] == [0, 0]


def test_when_one_of_processes_run_together_fails_the_others_are_stopped():
    healthy = ManagedProcess([sys.executable, "-c", POLITE, "healthy"], ready=line_ready("listening"))
    broken = ManagedProcess([sys.executable, "-c", "raise SystemExit('no database')"], name="broken",
                            ready=line_ready("listening"))
    with pytest.raises(ProcessFailed, match=r"(?s)broken exited with code 1 .*no database"):
        with running_together([healthy, broken]):
            pass
    assert healthy.returncode == 0  # stopped, not left running


# --- HTTP sink ---------------------------------------------------------------------------

def test_the_http_sink_records_every_method_and_path():
    with HttpSink() as sink:
        for method in ("GET", "HEAD", "POST", "DELETE"):
            request = urllib.request.Request(f"{sink.base_url}/pixel.png?x=1", method=method,
                                             data=b"{}" if method == "POST" else None)
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
        received = sink.wait_for(4)
    assert [(r.method, r.path) for r in received] == [
        (method, "/pixel.png?x=1") for method in ("GET", "HEAD", "POST", "DELETE")]
    assert received[2].body == b"{}"


def test_an_http_sink_playing_down_counts_attempts_but_accepts_nothing():
    with HttpSink(status=503) as sink:
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(urllib.request.Request(sink.url, data=b"{}"), timeout=5)
        failed.value.close()
    assert failed.value.code == 503 and sink.attempts == 1 and sink.received == []


# --- environment ------------------------------------------------------------------------

def test_patched_env_restores_set_unset_and_changed_inside():
    os.environ["DEVHARNESS_A"] = "before"
    os.environ.pop("DEVHARNESS_B", None)
    try:
        with patched_env({"DEVHARNESS_A": None}, DEVHARNESS_B="set"):
            assert "DEVHARNESS_A" not in os.environ and os.environ["DEVHARNESS_B"] == "set"
            os.environ["DEVHARNESS_B"] = "changed inside"
        assert os.environ["DEVHARNESS_A"] == "before" and "DEVHARNESS_B" not in os.environ
    finally:
        os.environ.pop("DEVHARNESS_A", None)


# --- database ---------------------------------------------------------------------------

def test_emptying_is_like_truncate_restart_identity(db):
    now = datetime.now(timezone.utc)
    with db.begin() as conn:
        add_registration(conn, created_at=now)
        add_event(conn, created_at=now)
        conn.execute(sa.text("INSERT INTO job_runs (job, trigger, status, started_at) "
                             "VALUES ('cleanup', 'cli', 'completed', now())"))
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM job_runs"))  # empty again, but its sequence moved on
    empty_tables(db)
    with db.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM registrations")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar() == 0
        new_id = conn.execute(sa.text("INSERT INTO job_runs (job, trigger, status, started_at) "
                                      "VALUES ('cleanup', 'cli', 'completed', now()) RETURNING id")).scalar()
        assert new_id == 1
        assert conn.execute(sa.text("SELECT count(*) FROM schema_migrations")).scalar() > 0


def test_a_throwaway_database_is_migrated_and_gone_afterwards(database_url):
    # On the session's server when DATABASE_URL names one, else a second embedded server.
    with ThrowawayDatabase(prefix="devharness_check") as database:
        engine = sa.create_engine(database.url)
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT count(*) FROM schema_migrations")).scalar() > 0
        finally:
            engine.dispose()
    if database.data_dir is not None:
        assert not database.data_dir.exists()
    else:
        admin = sa.create_engine(database_url)
        try:
            with admin.connect() as conn:
                names = conn.execute(sa.text("SELECT datname FROM pg_database")).scalars().all()
        finally:
            admin.dispose()
        assert not [name for name in names if name.startswith("devharness_check")]


# --- repository rules -------------------------------------------------------------------

PYTHON_FILES = [path for path in REPO.rglob("*.py")
                if not {".venv", "node_modules", ".git"} & set(path.relative_to(REPO).parts)]


def test_only_the_streamlit_entry_script_touches_sys_path():
    hacks = re.compile(r"sys\.path\.(insert|append)\(")
    offenders = [str(path.relative_to(REPO)) for path in PYTHON_FILES
                 if hacks.search(path.read_text(errors="replace")) and path != REPO / "tests" / "test_devharness.py"]
    assert offenders == ["dashboard/app.py"]


def test_scripts_and_benchmarks_do_not_import_tests_and_scripts_no_benchmarks():
    # A script may import the module beside it (Python puts a script's folder on sys.path);
    # what tests, benchmarks and scripts share lives in devharness.
    forbidden = {"scripts": r"tests|bench|receiver_load|\w+_bench", "bench": r"tests"}
    offenders = [str(path.relative_to(REPO)) for folder, names in forbidden.items()
                 for path in (REPO / folder).glob("*.py")
                 if re.search(rf"^\s*(from|import)\s+({names})\b", path.read_text(), re.MULTILINE)]
    assert offenders == []


def test_events_held_counts_the_webhook_events_of_a_database(db, database_url):
    from devharness import events_held
    from tests.support.factories import add_event

    assert events_held(database_url) == 0
    with db.begin() as conn:
        for _ in range(3):
            add_event(conn, created_at=datetime.now(timezone.utc))
    assert events_held(database_url) == 3
