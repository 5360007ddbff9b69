"""The embedded PostgreSQL's first start on a new machine: several processes at once.

On a machine that never ran the project, the first processes to start a server as root must
create the system user the server runs as, and the test runner starts one process per core at
the same moment. Each test here starts real processes together, as the test runner and the
demo do, with a user name of its own that does not exist yet (the real server user is never
touched), and removes that user afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest

from core.embedded import embedded_url
from core.errors import ConfigError

# Start one server (or attach to it), run one query, print "ok <data folder> <server start time>".
START_ONE = textwrap.dedent("""
    import sys
    from pathlib import Path
    import sqlalchemy as sa
    from core.embedded import embedded_url, stop_embedded
    url = embedded_url(Path(sys.argv[1]), keep_running=True, server_user=sys.argv[2] or None)
    with sa.create_engine(url).connect() as conn:
        started = conn.execute(sa.text("SELECT extract(epoch FROM pg_postmaster_start_time())")).scalar()
        server = conn.execute(sa.text("SELECT setting FROM pg_settings WHERE name = 'data_directory'")).scalar()
    print("ok", server, started, flush=True)
""")


@pytest.fixture
def new_server_user():
    """A system user name no machine has yet; the user is removed at the end if it was made."""
    if os.geteuid() != 0:
        pytest.skip("only a server started as root runs as a system user of its own")
    name = f"wmtest{uuid.uuid4().hex[:8]}"
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    yield name
    subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def folders():
    made: list[Path] = []

    def make() -> Path:
        folder = Path(tempfile.mkdtemp(prefix="wm-first-start-"))
        folder.chmod(0o711)  # the server's user passes through, as the test runner's folders allow
        made.append(folder)
        return folder / "monitor"

    yield make
    for folder in made:
        data = folder / "monitor"
        if (data / "pgdata" / "postmaster.pid").exists():
            subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                            "from core.embedded import stop_embedded; stop_embedded(Path(sys.argv[1]))",
                            str(data)], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def start_together(data_dirs: list[Path], user: str) -> list[list[str]]:
    """Start one process per folder at the same moment; each one's "ok" line, split."""
    processes = [subprocess.Popen([sys.executable, "-c", START_ONE, str(d), user],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for d in data_dirs]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err[-3000:]
        results.append(out.split())
    return results


def test_four_first_starts_at_once_each_get_a_server(new_server_user, folders):
    data_dirs = [folders() for _ in range(4)]
    results = start_together(data_dirs, new_server_user)
    assert [r[0] for r in results] == ["ok"] * 4
    # Four servers, each on its own data folder, each run by the user made for them.
    servers = {r[1] for r in results}
    assert servers == {str((d / "pgdata").resolve()) for d in data_dirs}
    uid = pwd.getpwnam(new_server_user).pw_uid
    for data_dir in data_dirs:
        assert (data_dir / "pgdata").stat().st_uid == uid


def test_processes_pointed_at_one_folder_share_one_server(new_server_user, folders):
    data_dir = folders()
    results = start_together([data_dir] * 3, new_server_user)
    assert {r[1] for r in results} == {str((data_dir / "pgdata").resolve())}
    # One server: all three sessions were served by a postmaster started at the same instant.
    assert len({r[2] for r in results}) == 1


def test_a_second_start_as_another_user_keeps_the_folders_owner(new_server_user, folders):
    """A data folder made for one user keeps running as that user, whatever the caller asks."""
    data_dir = folders()
    start_together([data_dir], new_server_user)
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                    "from core.embedded import stop_embedded; stop_embedded(Path(sys.argv[1]))",
                    str(data_dir)], check=True, capture_output=True, timeout=60)
    (result,) = start_together([data_dir], "")  # the default user
    assert result[0] == "ok"
    assert (data_dir / "pgdata").stat().st_uid == pwd.getpwnam(new_server_user).pw_uid


def test_a_data_folder_others_can_write_to_is_refused(folders):
    data_dir = folders()
    data_dir.mkdir(mode=0o700)
    data_dir.chmod(0o777)
    with pytest.raises(ConfigError) as refused:
        embedded_url(data_dir, keep_running=False)
    message = str(refused.value)
    assert "can be written by other users" in message and "\n" not in message
    assert not (data_dir / "pgdata").exists()


def test_a_data_folder_of_another_user_is_refused(folders):
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    data_dir = folders()
    data_dir.mkdir(mode=0o700)
    nobody = pwd.getpwnam("nobody")
    os.chown(data_dir, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(ConfigError) as refused:
        embedded_url(data_dir, keep_running=False)
    assert "belongs to another user" in str(refused.value)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700 and not (data_dir / "pgdata").exists()
