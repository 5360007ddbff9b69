"""The development harness: what tests, benchmarks and scripts need around the product.

- :mod:`devharness.ports`: listening sockets bound before a server starts, handed over to it
  (no "find a free port, close it, hope nobody takes it" race);
- :mod:`devharness.asgi`: an ASGI app under a real uvicorn in a thread, on such a socket;
- :mod:`devharness.process`: a child process started, waited for until it answers, stopped
  with a timeout, its output kept in a log file and shown when it fails (several at once:
  ``running_together``);
- :mod:`devharness.database`: a throwaway, migrated PostgreSQL database;
- :mod:`devharness.system_postgres`: a throwaway cluster of the machine's own PostgreSQL server
  (Debian's, with JIT), for what the embedded one cannot show;
- :mod:`devharness.supabase`: a server with a Supabase project's roles, grants and default
  privileges, to install the schema on as Supabase's `postgres` user would;
- :mod:`devharness.edge_function`: the Supabase Edge Function kit's example function under Deno;
- :mod:`devharness.env`: environment variables set for a block and restored after it;
- :mod:`devharness.http_sink` and :mod:`devharness.smtp`: servers alert channels deliver to;
- :mod:`devharness.browser`: the dashboard under ``streamlit run``, driven by Chromium;
- :mod:`devharness.scenarios`: fault scenarios against real processes (a module per kind of
  fault), run by ``tests/devharness/test_crash_safety.py`` and ``bench/fault_recovery.py``;
- :mod:`devharness.timing`: the median of a benchmark's runs after a warm-up;
- :mod:`devharness.query_timing`: the database a query bench reads (given, or loaded with
  demo history) and its table of medians.

Nothing here is imported by the product; the project installs it so that ``tests/``,
``bench/`` and ``scripts/`` import it without touching ``sys.path``.
"""

from devharness.asgi import AsgiServerThread
from devharness.database import ThrowawayDatabase, empty_tables, events_held, project_tables
from devharness.env import patched_env
from devharness.ports import listening_socket, refused_port, socket_url
from devharness.process import (
    ManagedProcess,
    ProcessFailed,
    http_ready,
    line_ready,
    port_ready,
    running_together,
    stop_together,
)
from devharness.timing import median_ms

__all__ = [
    "AsgiServerThread", "ManagedProcess", "ProcessFailed", "ThrowawayDatabase", "empty_tables", "events_held",
    "http_ready", "line_ready", "listening_socket", "median_ms", "patched_env", "port_ready", "project_tables",
    "refused_port", "running_together", "socket_url", "stop_together",
]
