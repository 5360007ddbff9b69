"""A child process that is started, waited for until it answers, and stopped.

    with listening_socket(inheritable=True) as sock:
        receiver = ManagedProcess(
            [sys.executable, "-m", "uvicorn", "tracking.receiver:app", "--fd", str(sock.fileno())],
            name="receiver", pass_fds=[sock.fileno()], ready=http_ready(socket_url(sock) + "/healthz"))
    with receiver:                        # start() and wait until /healthz answers 200
        ...
    # stopped: SIGTERM, then SIGKILL after stop_timeout_s

Everything the process prints (stdout and stderr) goes to a log file; when it exits before it
answers, or does not answer in time, :class:`ProcessFailed` carries the end of that log.
Several processes of one kind (two ``jobs watch``, say) start and stop side by side with
``with running_together([a, b]) as (a, b):``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

Ready = Callable[["ManagedProcess"], Any]
LOG_TAIL_CHARS = 4000


class ProcessFailed(RuntimeError):
    """The process exited early or did not answer in time; the message ends with its log."""


def http_ready(url: str, *, status: Callable[[int], bool] = lambda code: 200 <= code < 300,
               headers: Mapping[str, str] | None = None, timeout_s: float = 2.0) -> Ready:
    """Ready once a GET of ``url`` answers with a status ``status`` accepts (default 2xx)."""
    def check(_process: "ManagedProcess") -> bool:
        request = urllib.request.Request(url, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return status(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return status(exc.code)
        except (OSError, ValueError):
            return False
    check.__doc__ = f"GET {url}"
    return check


def port_ready(port: int, host: str = "127.0.0.1") -> Ready:
    """Ready once a TCP connection to ``host:port`` is accepted."""
    def check(_process: "ManagedProcess") -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False
    check.__doc__ = f"connect to {host}:{port}"
    return check


def line_ready(pattern: str) -> Ready:
    """Ready once the log has a line matching ``pattern``; the match is the process's
    ``ready_value`` (e.g. a URL the server announces after binding port 0)."""
    regex = re.compile(pattern, re.MULTILINE)

    def check(process: "ManagedProcess") -> re.Match | None:
        return regex.search(process.log())
    check.__doc__ = f"a line matching {pattern!r}"
    return check


class ManagedProcess:
    """``command`` as a child process; a context manager (start on entry, stop on exit).

    ``env``: the whole environment (default: this process's, at start), plus ``extra_env``
    (a value ``None`` removes the variable). ``pass_sockets``: listening sockets handed over
    to the child (their descriptors stay open in it, keeping their numbers; this process's
    copies are closed once it started). ``capture=False``: the output goes to this
    process's terminal instead of the log file. ``ready``: called with the process until it
    returns something true (see :func:`http_ready`, :func:`port_ready`, :func:`line_ready`);
    None: started is ready.
    """

    def __init__(self, command: Sequence[str], *, name: str | None = None,
                 cwd: str | Path | None = None, env: Mapping[str, str] | None = None,
                 extra_env: Mapping[str, str | None] | None = None, pass_fds: Sequence[int] = (),
                 pass_sockets: Sequence[socket.socket] = (),
                 ready: Ready | None = None, timeout_s: float = 60, stop_timeout_s: float = 15,
                 log_path: str | Path | None = None, capture: bool = True,
                 stop_signal: int = signal.SIGTERM):
        self.command = [str(part) for part in command]
        self.name = name or Path(self.command[0]).name
        self.cwd = cwd
        self.env = env
        self.extra_env = dict(extra_env or {})
        self.pass_sockets = list(pass_sockets)
        self.pass_fds = tuple(pass_fds) + tuple(sock.fileno() for sock in self.pass_sockets)
        self.ready = ready
        self.timeout_s = timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.capture = capture
        self.stop_signal = stop_signal
        self._own_log_dir: Path | None = None
        self.log_path = Path(log_path) if log_path else None
        self.popen: subprocess.Popen | None = None
        self._stop_sent = False
        self.ready_value: Any = None

    # -- life cycle --

    def start(self) -> "ManagedProcess":
        """Start the process and wait until it is ready (ProcessFailed if it is not)."""
        self.spawn()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def spawn(self) -> "ManagedProcess":
        """Start the process without waiting for it (then :meth:`wait_ready`), e.g. to start
        several at once (:func:`running_together`)."""
        self._stop_sent = False
        env = dict(os.environ if self.env is None else self.env)
        for key, value in self.extra_env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        if not self.capture:
            self.popen = subprocess.Popen(self.command, cwd=self.cwd, env=env, pass_fds=self.pass_fds)
        else:
            if self.log_path is None:
                self._own_log_dir = Path(tempfile.mkdtemp(prefix=f"{_slug(self.name)}-log-"))
                self.log_path = self._own_log_dir / "output.log"
            with open(self.log_path, "wb") as log_file:
                self.popen = subprocess.Popen(self.command, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                                              stdout=log_file, stderr=subprocess.STDOUT,
                                              pass_fds=self.pass_fds)
        # Handed over: the child holds the sockets now. Closing this process's copies means a
        # child that dies takes its port with it (clients get "refused", not a hang).
        for sock in self.pass_sockets:
            sock.close()
        return self

    def wait_ready(self) -> Any:
        """Poll ``ready`` (quickly at first, then every 0.2 s) until it answers."""
        if self.ready is None:
            return None
        deadline = time.monotonic() + self.timeout_s
        pause = 0.01
        while True:
            value = self.ready(self)
            if value:
                self.ready_value = value
                return value
            if self.popen.poll() is not None:
                # One last look: it may have answered (or printed) just before exiting.
                value = self.ready(self)
                if value:
                    self.ready_value = value
                    return value
                raise ProcessFailed(f"{self.name} exited with code {self.popen.returncode} before it "
                                    f"was ready ({self.ready.__doc__}); its output:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{self.name} was not ready ({self.ready.__doc__}) within "
                                    f"{self.timeout_s:g} s; its output:\n{self.log_tail()}")
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    def wait(self, timeout_s: float | None = None) -> int:
        """Wait for the process to exit by itself; its exit code."""
        return self.popen.wait(timeout=timeout_s)

    def stop(self) -> int | None:
        """``stop_signal`` (SIGTERM), then SIGKILL after ``stop_timeout_s``; the exit code.
        Safe to call twice."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.send_stop_signal()
            try:
                self.popen.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=self.stop_timeout_s)
        return self.popen.returncode

    def send_stop_signal(self) -> None:
        """Ask the process to stop (``stop_signal``) without waiting for it. Sent once: a
        second signal could reach the process while it shuts down, with its handler gone."""
        if self.popen is not None and self.popen.poll() is None and not self._stop_sent:
            self._stop_sent = True
            self.popen.send_signal(self.stop_signal)

    def kill_tree(self) -> list[int]:
        """SIGKILL the process and every descendant at once (a crash: nothing runs its
        shutdown), e.g. uvicorn's workers with their supervisor; the pids killed."""
        if self.popen is None or self.popen.poll() is not None:
            return []
        pids = [self.popen.pid, *descendants(self.popen.pid)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait(timeout=self.stop_timeout_s)
        return pids

    def close(self) -> None:
        """Stop, and remove the log file the process was given (unless the caller chose it)."""
        self.stop()
        if self._own_log_dir is not None:
            shutil.rmtree(self._own_log_dir, ignore_errors=True)
            self._own_log_dir = None

    def __enter__(self) -> "ManagedProcess":
        """Start (unless ``start()`` was called already); the block ends with ``close()``."""
        return self if self.popen is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what it printed --

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def log(self) -> str:
        """Everything the process printed so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        text = self.log()
        return text if len(text) <= chars else "…" + text[-chars:]


@contextmanager
def running_together(processes: Iterable[ManagedProcess]) -> Iterator[list[ManagedProcess]]:
    """Start ``processes`` at once (every one spawned before any is waited for) and hand them
    over when each is ready; at the end stop them at once (:func:`stop_together`) and close
    them. When one is not ready (:class:`ProcessFailed`), all of them are stopped."""
    processes = list(processes)
    try:
        for process in processes:
            process.spawn()
        for process in processes:
            process.wait_ready()
        yield processes
    finally:
        stop_together(processes)
        for process in processes:
            process.close()


def stop_together(processes: Iterable[ManagedProcess]) -> list[int | None]:
    """Send every process its stop signal, then wait for each (SIGKILL after its
    ``stop_timeout_s``), so they shut down side by side; their exit codes."""
    processes = list(processes)
    for process in processes:
        process.send_stop_signal()
    return [process.stop() for process in processes]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux: read from /proc), children first."""
    found: list[int] = []
    queue = [pid]
    while queue:
        parent = queue.pop(0)
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                text = Path(f"/proc/{parent}/task/{task}/children").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            for child in map(int, text.split()):
                if child not in found:
                    found.append(child)
                    queue.append(child)
    return found


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "process"
