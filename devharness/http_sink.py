"""A real HTTP server on 127.0.0.1 that records every request: where alert channels deliver
(generic webhook and Slack incoming webhook), and where security tests point what must never
be fetched (a live Stripe key sent to the wrong host, an image in external text); for tests
and the benchmarks. Mail goes to :mod:`devharness.smtp`.

    with HttpSink() as sink:               # sink.url: http://127.0.0.1:PORT/hook
        ...
        [message] = sink.wait_for(1)
    assert sink.received == []             # nothing was fetched from sink.base_url
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the request was read

    def json(self):
        return json.loads(self.body)


class HttpSink:
    """Records every request (any method); answers ``status`` with ``reply`` (set it to 503 to
    play a channel that is down: such requests count in ``attempts``, not in ``received``).

    ``reply`` may also be a function of the request (a ``Received``) returning the body, to
    stand in for a service that answers each query its own way. ``endless=True`` sends the
    reply again and again, chunked, until the client hangs up: an answer that never ends.
    ``judge``, when given, answers instead while ``status`` is a success: it gets each request and
    returns (status, reply), e.g. a service's 400 for a body its schema refuses."""

    def __init__(self, status: int = 200, reply: bytes | Callable[[Received], bytes] = b"ok",
                 endless: bool = False, judge: Callable[[Received], tuple[int, bytes]] | None = None):
        self.status = status
        self.reply = reply
        self.endless = endless
        self.judge = judge
        self.received: list[Received] = []
        self.attempts = 0
        self._arrived = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = Received(self.command, self.path, dict(self.headers), body, time.time())
                status, reply = sink.status, None
                if sink.judge is not None and 200 <= status < 300:
                    status, reply = sink.judge(request)
                with sink._arrived:
                    sink.attempts += 1
                    if 200 <= status < 300:
                        sink.received.append(request)
                    sink._arrived.notify_all()
                if reply is None:
                    reply = sink.reply(request) if callable(sink.reply) else sink.reply
                self.send_response(status)
                if sink.endless:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.send_forever(reply)
                    return
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply)

            def send_forever(self, chunk: bytes):
                self.close_connection = True
                frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                try:
                    while True:
                        self.wfile.write(frame)
                except OSError:  # the client hung up
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = answer

            def log_message(self, *args):
                pass

        # Port 0: the kernel picks a free port as the server binds it (nothing to race for).
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A short poll, so that leaving the block does not wait up to half a second.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01},
                                       name="http-sink", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: any path below it is recorded too."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Where a channel posts: ``base_url`` + ``/hook``."""
        return f"{self.base_url}/hook"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` requests were accepted; return them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            return list(self.received)

    def __enter__(self) -> "HttpSink":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
