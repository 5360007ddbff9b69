"""A local HTTP server that records every request it gets (and answers 200 with nothing).

Security tests use it as the place a leak would go: a live Stripe key sent to the wrong
host, an image or link in external text fetched while a page renders.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


class Sink:
    def __init__(self, server: ThreadingHTTPServer):
        self._server = server
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._server.server_address[1]


@contextmanager
def http_sink() -> Iterator[Sink]:
    """A recording HTTP server on a free 127.0.0.1 port, stopped on exit."""
    sink: Sink

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            sink.requests.append((self.command, self.path, dict(self.headers.items())))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _record

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink = Sink(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
