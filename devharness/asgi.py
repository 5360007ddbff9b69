"""An ASGI app served by a real uvicorn in a thread, on a socket bound before it starts."""

from __future__ import annotations

import threading
import time

from devharness.ports import listening_socket, socket_url


class AsgiServerThread:
    """``with AsgiServerThread(app) as server:`` serves ``app`` on ``server.url`` until the
    block ends (lifespan events on). ``config``: a whole ``uvicorn.Config`` instead of ``app``
    (its host and port are not used: the server is handed the socket). Raises RuntimeError if
    uvicorn does not start."""

    def __init__(self, app=None, *, config=None, start_timeout_s: float = 20, log_level: str = "warning"):
        import uvicorn

        if (app is None) == (config is None):
            raise TypeError("give either app or config")
        self.sock = listening_socket()
        self.port = self.sock.getsockname()[1]
        self.url = socket_url(self.sock)
        self.start_timeout_s = start_timeout_s
        self.server = uvicorn.Server(config or uvicorn.Config(app, log_level=log_level, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="asgi-server", daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        pause = 0.002
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.sock.close()
                raise RuntimeError("uvicorn did not start (see the log above)")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
