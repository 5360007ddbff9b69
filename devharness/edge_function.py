"""The Supabase Edge Function kit's example function under real Deno, as a managed process.

Deno comes from the npm registry, pinned in package-lock.json (``npm ci`` puts it at
``node_modules/.bin/deno``); the function's own dependencies are pinned by
``integrations/supabase/deno.lock``. The function listens on a port of the kernel's choice
(``PORT=0``) and is ready once Deno prints the address it listens on, which becomes its URL.

    process = edge_function_process(database_url, secret="whsec_...")
    with process:
        post_to(function_url(process))
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping

from devharness.process import ManagedProcess, line_ready

REPO = Path(__file__).resolve().parent.parent
KIT = REPO / "integrations" / "supabase"
FUNCTION = KIT / "functions" / "stripe-webhook" / "index.ts"


def deno_binary() -> Path | None:
    """The pinned Deno (``npm ci``), else one on PATH, else None."""
    pinned = REPO / "node_modules" / ".bin" / "deno"
    if pinned.exists():
        return pinned
    found = shutil.which("deno")
    return Path(found) if found else None


def edge_function_process(database_url: str, *, secret: str, extra_env: Mapping[str, str | None] | None = None,
                          name: str = "edge-function") -> ManagedProcess:
    """``deno run -A .../stripe-webhook/index.ts`` with Supabase's variables, on 127.0.0.1."""
    deno = deno_binary()
    if deno is None:
        raise FileNotFoundError("deno is not installed: run `npm ci` in the repository")
    env = {"SUPABASE_DB_URL": database_url, "STRIPE_WEBHOOK_SECRET": secret, "PORT": "0",
           "HOST": "127.0.0.1", "NO_COLOR": "1", **(extra_env or {})}
    return ManagedProcess([str(deno), "run", "-A", "--frozen", str(FUNCTION)], name=name, cwd=REPO,
                          extra_env=env, ready=line_ready(r"Listening on (http://127\.0\.0\.1:\d+)/"),
                          timeout_s=120)  # a first run on a cold cache compiles the kit


def function_url(process: ManagedProcess) -> str:
    """The running function's ``http://127.0.0.1:PORT``."""
    return process.ready_value.group(1)


def edge_function_serve(database_url: str, *, secret: str, extra_env: Mapping[str, str | None] | None = None):
    """:data:`devharness.scenarios.receiver_crash.Serve` for the function: a process under a name, its URL once started."""
    def serve(name: str):
        process = edge_function_process(database_url, secret=secret, extra_env=extra_env, name=name)
        return process, lambda: function_url(process)
    return serve
