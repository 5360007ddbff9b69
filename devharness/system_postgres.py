"""A throwaway cluster of the machine's own PostgreSQL server (Debian's ``postgresql`` package).

The embedded server (pgserver) is built without JIT; Debian's PostgreSQL, Supabase's and most
managed servers have LLVM JIT with ``jit = on``. Benches and a few tests run on this one too,
so what only a standard server does shows here:

    with SystemPostgres(settings={"jit_above_cost": "0"}) as server:
        with ThrowawayDatabase(server_url=server.url) as db:
            ...

The cluster lives in a new temporary folder, listens on no TCP port, only on a Unix socket in
a private folder, with a random password (scram-sha-256) for its superuser, runs as the
``postgres`` system user when started as root (the package creates that user), and is stopped
and removed on exit. ``installed()`` says whether the machine has the server at all.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

SERVER_ROOT = Path("/usr/lib/postgresql")
RUN_AS_ROOT = "postgres"  # the user Debian's postgresql-common creates
START_TIMEOUT_S = 60


def server_versions() -> list[int]:
    """Major versions of the PostgreSQL servers installed under /usr/lib/postgresql, newest first."""
    if not SERVER_ROOT.is_dir():
        return []
    found = [int(p.name) for p in SERVER_ROOT.iterdir()
             if re.fullmatch(r"\d+", p.name) and (p / "bin" / "postgres").exists()]
    return sorted(found, reverse=True)


def installed(version: int | None = None) -> bool:
    versions = server_versions()
    return bool(versions) if version is None else version in versions


class SystemPostgres:
    """A context manager whose value has ``url`` (the superuser's, over the socket) and ``version``."""

    def __init__(self, *, version: int | None = None, settings: dict[str, str] | None = None):
        versions = server_versions()
        if not versions:
            raise RuntimeError(f"no PostgreSQL server under {SERVER_ROOT} (apt-get install postgresql)")
        if version is not None and version not in versions:
            raise RuntimeError(f"PostgreSQL {version} is not installed (found {versions})")
        self.version = version or versions[0]
        self.bin = SERVER_ROOT / str(self.version) / "bin"
        self.settings = dict(settings or {})
        self.url: str | None = None
        self._folder: Path | None = None

    def __enter__(self) -> "SystemPostgres":
        user = RUN_AS_ROOT if os.geteuid() == 0 else None
        self._folder = Path(tempfile.mkdtemp(prefix=f"system-postgres-{self.version}-"))
        try:
            self._start(user)
        except BaseException:
            self.close()
            raise
        return self

    def _start(self, user: str | None) -> None:
        folder = self._folder
        data, sockets = folder / "data", folder / "sockets"
        password = secrets.token_urlsafe(24)
        data.mkdir(mode=0o700)
        sockets.mkdir(mode=0o700)
        (folder / "password").write_text(password)
        (folder / "password").chmod(0o600)
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            folder.chmod(0o711)  # the server's user passes through, nobody lists it
            for path in (data, sockets, folder / "password"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(user, [self.bin / "initdb", "-D", data, "-U", "postgres", "--pwfile", folder / "password",
                         "--auth-host=reject", "--auth-local=scram-sha-256", "--encoding=UTF8",
                         "--locale=C.UTF-8"])
        (folder / "password").unlink()
        # No TCP port, so no port to find free and race for; fsync off: the data dies with the block.
        options = [f"-c {name}={value}" for name, value in
                   {"listen_addresses": "''", "unix_socket_directories": str(sockets), "fsync": "off",
                    "synchronous_commit": "off", "full_page_writes": "off", **self.settings}.items()]
        self._run(user, [self.bin / "pg_ctl", "-D", data, "-l", data / "log", "-w", "-t", str(START_TIMEOUT_S),
                         "-o", " ".join(options), "start"])
        self._user = user
        self.url = f"postgresql+psycopg://postgres:{password}@/postgres?host={sockets}"

    def _run(self, user: str | None, command: list) -> None:
        done = subprocess.run([str(part) for part in command], user=user, cwd="/", capture_output=True,
                              text=True, timeout=START_TIMEOUT_S + 30)
        if done.returncode != 0:
            log = self._folder / "data" / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{Path(str(command[0])).name} failed: {done.stderr.strip()[-2000:]}\n{tail}")

    def close(self) -> None:
        folder, self._folder = self._folder, None
        if folder is None:
            return
        if (folder / "data" / "postmaster.pid").exists():
            subprocess.run([str(self.bin / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "-w", "stop"],
                           user=getattr(self, "_user", None), cwd="/", capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        self.close()
