"""The embedded PostgreSQL used when DATABASE_URL is unset.

pgserver ships a real PostgreSQL 16 in a wheel; this module starts it with pgserver's
binaries (initdb, pg_ctl) but on its own terms, because pgserver's ``get_server`` trusts
other local users (local logins need no password, so whoever reaches the socket is in):

- the server listens on no TCP port, only on a Unix socket in a private folder (0700, owned
  by the server's user): the data folder when its path is short enough for a socket, else a
  fresh private folder from ``tempfile.mkdtemp``, never a shared world-writable one;
- the data folder is private (initdb makes it 0700) and MONITOR_DATA_DIR is created 0700
  (0711 as root, so the server's own user can pass through it and nothing more);
- no permission is changed on a folder the project did not create: run as root, PostgreSQL
  runs as the ``pgserver`` system user, and when that user cannot reach MONITOR_DATA_DIR
  (e.g. under /root) the start stops with a message instead of opening /root.

The server is started once and left running so the dashboard, the jobs and the receiver,
each in its own process, share it; a process attaches to a running one by reading
``postmaster.pid``. A running server left with a socket folder others can enter (started
by an older version) is restarted privately.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import stat
import tempfile
import time
import warnings
from pathlib import Path

from core.errors import ConfigError

_servers: dict[Path, str] = {}  # pgdata -> URL, for this process
_dashboard_roles_ready: set[str] = set()
DASHBOARD_ROLE = "webhook_monitor_dashboard"
SERVER_USER_AS_ROOT = "pgserver"  # PostgreSQL refuses to run as root; pgserver's own choice
SOCKET_NAME = ".s.PGSQL.5432"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS; keep a margin
START_TIMEOUT_S = 60


def embedded_url(monitor_data_dir: Path, *, keep_running: bool = True, server_user: str | None = None) -> str:
    """Start (or attach to) the embedded server under ``monitor_data_dir``; return its URL.

    ``keep_running=False`` stops the server when this process exits (tests); otherwise it
    stays up for the next process, as the dashboard and the jobs expect. ``server_user``:
    the system user a server started as root runs as (default ``pgserver``; created when
    missing), so a test can exercise the first start on a machine that lacks it.
    """
    data_dir = _pgdata(monitor_data_dir)
    url = _servers.get(data_dir)
    if url is None:
        url = _start(data_dir, keep_running=keep_running, server_user=server_user)
        _servers[data_dir] = url
    return url


def _pgdata(monitor_data_dir: Path) -> Path:
    return Path(monitor_data_dir).expanduser().resolve() / "pgdata"


def embedded_running(monitor_data_dir: Path) -> bool:
    """True when an embedded server is already up for this data folder."""
    pgdata = _pgdata(monitor_data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return False
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return bool(info is not None and info.is_running())


def stop_embedded(monitor_data_dir: Path) -> None:
    """Stop the embedded server of this data folder (a fast shutdown: sessions end, data stays)."""
    pgdata = _pgdata(monitor_data_dir)
    _servers.pop(pgdata, None)
    if not embedded_running(monitor_data_dir):
        return
    pgserver, PostmasterInfo = _pg()
    info = PostmasterInfo.read_from_pgdata(pgdata)
    # cwd "/": as root, pg_ctl runs as the pgserver user, who may not enter the caller's folder.
    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_data_owner(pgdata), cwd="/", timeout=30)
    socket_dir = Path(info.socket_dir) if info is not None and info.socket_dir else None
    if socket_dir is not None and socket_dir != pgdata and socket_dir.name.startswith("webhook-monitor-pg-"):
        import shutil

        shutil.rmtree(socket_dir, ignore_errors=True)  # the private folder made for this start


def _pg():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
            import pgserver
            from pgserver.utils import PostmasterInfo
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise ConfigError(f"the embedded database needs the 'pgserver' package ({exc}); "
                          "install the project or set DATABASE_URL") from None
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return pgserver, PostmasterInfo


def _server_user(requested: str | None = None) -> str | None:
    """The system user PostgreSQL runs as: none of its own unless root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    return requested or SERVER_USER_AS_ROOT


def _data_owner(pgdata: Path) -> str | None:
    """As root, the user that owns an existing data folder: the one its server runs as."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        return pwd.getpwuid(pgdata.stat().st_uid).pw_name
    except (OSError, KeyError):
        return SERVER_USER_AS_ROOT


def _user_can_reach(path: Path, user: str) -> bool:
    """Whether ``user`` may enter ``path`` and every folder above it (x permission)."""
    import grp
    import pwd

    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    for folder in [path, *path.parents]:
        info = folder.stat()
        if info.st_uid == entry.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


def _private_folder(path: Path, owner: str | None) -> bool:
    """Only its owner (the server's user) may enter it: mode 0700 or stricter."""
    try:
        info = path.stat()
    except OSError:
        return False
    if owner is not None:
        import pwd

        if info.st_uid != pwd.getpwnam(owner).pw_uid:
            return False
    elif info.st_uid != os.geteuid():
        return False
    return stat.S_IMODE(info.st_mode) & 0o077 == 0


def _prepare_folders(data_dir: Path, user: str | None) -> None:
    """MONITOR_DATA_DIR private (0700; 0711 as root so the server's user can pass through)."""
    monitor_dir = data_dir.parent
    try:
        # Not "exists() then mkdir": several processes may make their first start at once.
        monitor_dir.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        _refuse_unsafe_folder(monitor_dir)
    else:
        if user is not None:
            monitor_dir.chmod(0o711)  # created here, so ours to set
    if user is None:
        return
    ensure_system_user(user)
    if not _user_can_reach(monitor_dir, user):
        raise ConfigError(
            f"run as root, the embedded PostgreSQL runs as the system user '{user}', which cannot "
            f"reach {monitor_dir}; the project does not open folders it did not create, so set "
            "MONITOR_DATA_DIR to a folder outside private home folders (e.g. /var/lib/stripe-webhook-monitor) "
            "or set DATABASE_URL")
    pgserver, _ = _pg()
    binaries = Path(pgserver.__file__).parent / "pginstall"
    if not _user_can_reach(binaries / "bin", user):
        raise ConfigError(f"run as root, the embedded PostgreSQL runs as '{user}', which cannot reach "
                          f"its programs in {binaries}; install the project where other users can read "
                          "it, or set DATABASE_URL")


def _refuse_unsafe_folder(monitor_dir: Path) -> None:
    """An existing MONITOR_DATA_DIR must be ours and writable by nobody else: whoever can write
    there can swap the data folder or the lock file under a server that trusts local logins."""
    info = monitor_dir.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"MONITOR_DATA_DIR {monitor_dir} is not a folder; point it at a folder of its own")
    if info.st_uid != os.geteuid():
        raise ConfigError(f"MONITOR_DATA_DIR {monitor_dir} belongs to another user (uid {info.st_uid}); "
                          "use a folder of your own, or set DATABASE_URL")
    if stat.S_IMODE(info.st_mode) & 0o022:
        raise ConfigError(f"MONITOR_DATA_DIR {monitor_dir} can be written by other users "
                          f"(mode {stat.S_IMODE(info.st_mode):o}); run 'chmod go-w {monitor_dir}' "
                          "or use another folder")


# useradd's own locking does not keep two concurrent runs (or a package install adding its own
# user) from rewriting /etc/passwd over each other: a user created a moment ago can vanish again,
# and a server then started as its uid fails with "could not look up effective user ID". So every
# process of ours creates the user under one lock, and checks the user stayed.
USER_LOCK_FOLDERS = ("/run/lock", "/var/lock")
USERADD_EXISTS = 9  # shadow-utils: "username already in use"
USERADD_ATTEMPTS = 5


def _user_lock_path() -> Path:
    for folder in USER_LOCK_FOLDERS:
        if os.path.isdir(folder) and os.access(folder, os.W_OK):
            return Path(folder) / "stripe-webhook-monitor-useradd.lock"
    return Path(tempfile.gettempdir()) / "stripe-webhook-monitor-useradd.lock"


def ensure_system_user(user: str) -> None:
    """Create the system user ``user`` unless it exists; safe when many processes do it at once.

    Look up, create if missing ("already exists" counts as success), and look up again, all
    under an exclusive lock on a root-only file; a user that disappears again (another
    program's useradd wrote /etc/passwd at the same moment) is created again.
    """
    import pwd
    import subprocess

    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    # O_NOFOLLOW: the fallback folder may be world-writable; never follow a planted link.
    fd = os.open(_user_lock_path(), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        last_error = ""
        for attempt in range(USERADD_ATTEMPTS):
            try:
                pwd.getpwnam(user)
                time.sleep(0.05)  # a concurrent rewrite of /etc/passwd shows within moments
                pwd.getpwnam(user)
                return
            except KeyError:
                pass
            done = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                                   user], capture_output=True, text=True)
            if done.returncode not in (0, USERADD_EXISTS):
                last_error = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
                last_error = last_error[0]
                time.sleep(0.2 * (attempt + 1))  # /etc/passwd locked by another program: wait
        raise ConfigError(f"could not create the system user '{user}' the embedded PostgreSQL runs as "
                          f"when started as root ({last_error or 'it did not stay'}); create it with "
                          f"'useradd --system {user}' or set DATABASE_URL")
    finally:
        os.close(fd)  # closing releases the lock


def _initdb(data_dir: Path, user: str | None) -> None:
    pgserver, _ = _pg()
    data_dir.mkdir(mode=0o700, exist_ok=True)
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    # Local logins need no password: the socket's folder is private, so only the server's
    # user and root can reach it. TCP is off (-h "") and refused even if turned on.
    pgserver.initdb(["--auth-local=trust", "--auth-host=reject", "--encoding=utf8", "-U", "postgres"],
                    pgdata=data_dir, user=user, cwd="/")


def _socket_dir(data_dir: Path, user: str | None) -> Path:
    """The data folder when a socket path in it fits, else a fresh private folder."""
    if len(str(data_dir / SOCKET_NAME)) <= MAX_SOCKET_PATH:
        return data_dir
    folder = Path(tempfile.mkdtemp(prefix="webhook-monitor-pg-"))  # 0700, unguessable name
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder


def _url(info) -> str:
    return f"postgresql+psycopg://postgres@/postgres?host={info.socket_dir}&port={info.port or 5432}"


def _start(data_dir: Path, *, keep_running: bool, server_user: str | None) -> str:
    pgserver, PostmasterInfo = _pg()
    user = _server_user(server_user)
    _prepare_folders(data_dir, user)
    lock_path = data_dir.parent / ".embedded-postgres.lock"
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # one starter at a time; others attach after
        try:
            if not (data_dir / "PG_VERSION").exists():
                _initdb(data_dir, user)
            elif user is not None:
                user = _data_owner(data_dir)  # an existing server keeps running as its own user
            info = PostmasterInfo.read_from_pgdata(data_dir)
            running = info is not None and info.is_running()
            if running and not (info.socket_dir is not None and _private_folder(Path(info.socket_dir), user)):
                # Started by an older version, with a socket folder others can enter.
                pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user, cwd="/", timeout=30)
                running = False
            url = _url(info) if running else _launch(data_dir, user)
        except ConfigError:
            raise
        except Exception as exc:
            log = data_dir / "log"
            raise ConfigError(
                f"could not start the embedded PostgreSQL in {data_dir} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); see {log}, "
                "or set DATABASE_URL to use another server"
            ) from None
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    if not keep_running:
        atexit.register(_stop_quietly, data_dir.parent)
    return url


def _launch(data_dir: Path, user: str | None) -> str:
    pgserver, PostmasterInfo = _pg()
    socket_dir = _socket_dir(data_dir, user)
    pgserver.pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(data_dir / "log"), "start"],
                    pgdata=data_dir, user=user, cwd="/", timeout=START_TIMEOUT_S)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = PostmasterInfo.read_from_pgdata(data_dir)
        if info is not None and info.is_running() and info.status == "ready":
            return _url(info)
        time.sleep(0.2)
    raise TimeoutError(f"the server did not become ready within {START_TIMEOUT_S}s")


def _stop_quietly(monitor_data_dir: Path) -> None:
    try:
        stop_embedded(monitor_data_dir)
    except Exception:  # at exit: nothing left to tell
        pass


def ensure_dashboard_role(url: str) -> None:
    """Create or refresh the embedded database's read-only dashboard role (core/embedded.sql).

    Runs as the embedded superuser; grants SELECT on every table present, so ``migrate``
    calls it again after adding tables.
    """
    import sqlalchemy as sa

    from core.sql import load_package

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, hide_parameters=True)
    try:
        with engine.begin() as conn:
            load_package("core", "embedded.sql").execute(conn, "ensure_dashboard_role")
    finally:
        engine.dispose()
    _dashboard_roles_ready.add(url)


def embedded_dashboard_url(monitor_data_dir: Path) -> str:
    """The embedded database's URL for the dashboard: its read-only, non-superuser role."""
    import sqlalchemy as sa

    url = embedded_url(monitor_data_dir)
    if url not in _dashboard_roles_ready:
        ensure_dashboard_role(url)
    return sa.engine.make_url(url).set(username=DASHBOARD_ROLE).render_as_string(hide_password=False)
