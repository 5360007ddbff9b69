"""`python -m dashboard`: the pages' libraries are loaded before Streamlit listens."""

import subprocess
import sys

from dashboard.__main__ import imported_modules
from tests.conftest import REPO


def test_the_modules_to_preload_are_what_the_pages_import():
    modules = imported_modules()
    # What the Overview's script imports, including a page's figures named in `from … import`.
    for name in ("pandas", "plotly.graph_objects", "dashboard.data", "dashboard.views.overview.figures",
                 "jobs.health.verdict"):
        assert name in modules
    # The page scripts are read for their imports, never imported (they draw when run).
    assert not [name for name in modules if name.endswith(".page") or name == "dashboard.app"]


def test_preloading_loads_them_quietly_before_any_run():
    probe = ("import sys, dashboard.__main__ as serve; serve.preload(); "
             "print(all(name in sys.modules for name in ('pandas', 'dashboard.views.errors.figures', "
             "'jobs.health.verdict', '_plotly_utils.basevalidators')))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    # _plotly_utils.basevalidators: what building the first figure loads.
    # Streamlit's "No runtime found" for every cache decorator met before the server starts
    # would be noise in the administrator's log.
    assert "No runtime found" not in done.stderr
