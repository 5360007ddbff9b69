"""The embedded PostgreSQL never trusts other local users: private socket folder whatever the
path length, private data, and no permission change on folders the project did not create."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.embedded import embedded_url, stop_embedded
from core.errors import ConfigError

PSQL = Path(__import__("pgserver").__file__).parent / "pginstall" / "bin" / "psql"
OTHER_USER = "nobody"


@pytest.fixture
def scratch():
    """A folder for one throwaway server (passable by the server's user), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="wm-embedded-"))
    folder.chmod(0o711)
    started: list[Path] = []
    yield folder, started
    for data_dir in started:
        stop_embedded(data_dir)
    shutil.rmtree(folder, ignore_errors=True)


def socket_dir(url: str) -> Path:
    return Path(sa.engine.make_url(url).query["host"])


def connect_as_other_user(url: str) -> subprocess.CompletedProcess:
    host = socket_dir(url)
    return subprocess.run([str(PSQL), "--no-psqlrc", "-h", str(host), "-U", "postgres", "-d", "postgres",
                           "-c", "SELECT 1"], user=OTHER_USER, cwd="/", capture_output=True, text=True,
                          timeout=30)


def needs_root():
    if os.geteuid() != 0:
        pytest.skip("connecting as another local user needs root")


@pytest.mark.parametrize("long_path", [False, True])
def test_other_local_users_cannot_connect(scratch, long_path):
    needs_root()
    folder, started = scratch
    data_dir = folder / ("d" * 120 if long_path else "d") / "monitor"
    started.append(data_dir)
    url = embedded_url(data_dir)
    sockets = socket_dir(url)
    assert len(str(sockets / ".s.PGSQL.5432")) <= 100
    mode = stat.S_IMODE(sockets.stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)  # only the server's user may enter the socket's folder
    with sa.create_engine(url).connect() as conn:  # the owner (root here) still can
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    refused = connect_as_other_user(url)
    assert refused.returncode != 0 and "Permission denied" in refused.stderr


def test_data_is_private(scratch):
    folder, started = scratch
    data_dir = folder / "monitor"
    started.append(data_dir)
    embedded_url(data_dir)
    assert stat.S_IMODE((data_dir / "pgdata").stat().st_mode) == 0o700
    others = stat.S_IMODE(data_dir.stat().st_mode) & 0o007
    assert others in (0, 0o001)  # at most "pass through" (as root, for the server's own user)


def test_folders_the_project_did_not_create_keep_their_permissions(scratch):
    needs_root()
    folder, started = scratch
    private_home = folder / "home"
    private_home.mkdir(mode=0o700)  # like /root: the server's user may not enter it
    data_dir = private_home / ".local" / "share" / "monitor"
    started.append(data_dir)
    with pytest.raises(ConfigError) as info:
        embedded_url(data_dir)
    assert "MONITOR_DATA_DIR" in str(info.value) and "\n" not in str(info.value)
    assert stat.S_IMODE(private_home.stat().st_mode) == 0o700  # not opened to others
    assert stat.S_IMODE(folder.stat().st_mode) == 0o711


def test_a_server_left_with_an_open_socket_folder_is_restarted_privately(scratch):
    """A server started by pgserver's own code (world-writable socket folder) is not reused."""
    needs_root()
    import pgserver

    folder, started = scratch
    data_dir = folder / ("e" * 120) / "monitor"
    started.append(data_dir)
    embedded_url(data_dir)
    stop_embedded(data_dir)
    open_sockets = Path(tempfile.mkdtemp(prefix="open-sockets-"))
    try:
        open_sockets.chmod(0o777)
        pgdata = data_dir / "pgdata"
        pgserver.pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {open_sockets}", "-l", str(pgdata / "log"), "start"],
                        pgdata=pgdata, user="pgserver", cwd="/", timeout=60)
        from core import embedded

        embedded._servers.clear()
        url = embedded_url(data_dir)
        assert socket_dir(url) != open_sockets
        assert connect_as_other_user(url).returncode != 0
    finally:
        shutil.rmtree(open_sockets, ignore_errors=True)
