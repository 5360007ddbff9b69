"""Loopback ports that are already bound when the server is given them.

Picking a "free" port, closing it and passing the number to a server leaves a gap in which
any other process can take the port. Here the caller binds and listens first, then hands the
socket itself over: to a thread (``uvicorn.Server.run(sockets=[sock])``,
``http.server`` with ``bind_and_activate=False``) or to a child process (its file descriptor
with ``pass_fds``, e.g. ``uvicorn --fd N``). A client that connects before the server
accepts waits in the listen backlog instead of being refused.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from typing import Iterator

LOOPBACK = "127.0.0.1"


def listening_socket(host: str = LOOPBACK, port: int = 0, *, backlog: int = 128,
                     inheritable: bool = False) -> socket.socket:
    """A TCP socket bound to ``host`` (a port of the kernel's choice by default) and listening.

    ``inheritable=True`` keeps the descriptor open across ``exec`` (for ``pass_fds``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.set_inheritable(inheritable)
    except BaseException:
        sock.close()
        raise
    return sock


def socket_url(sock: socket.socket, scheme: str = "http") -> str:
    """``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{host}:{port}"


@contextmanager
def refused_port(host: str = LOOPBACK) -> Iterator[int]:
    """A port where connections are refused, for "the server is down" tests.

    The port is bound but not listening for the whole block, so nothing else can start
    listening there in the meantime (a closed "free" port could be taken by then)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()
