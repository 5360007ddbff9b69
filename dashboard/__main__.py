"""Serve the dashboard: ``python -m dashboard [STREAMLIT OPTIONS]``, the same as
``streamlit run dashboard/app.py [STREAMLIT OPTIONS]`` with the pages' libraries loaded before
the server starts.

Streamlit imports what a page needs only when the first visitor's run reaches it: pandas,
Plotly, SQLAlchemy, the figure builders and the jobs a page starts take over a second to
load, and the first administrator to open the dashboard after a restart would wait for them.
Here every module the dashboard's files import is imported, and one throwaway figure built
(Plotly loads its validators on first use), before Streamlit starts listening: the server is
up about a second later, and its first visitor no longer waits. (Not in a thread beside the
server: a first run importing the same libraries at the same moment could meet the import
system's deadlock guard and fail.)
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parent
APP = DASHBOARD / "app.py"

log = logging.getLogger("dashboard.preload")


def imported_modules(folder: Path = DASHBOARD) -> list[str]:
    """Every module the dashboard's files import, at their top or inside functions, in the
    order first seen (the page scripts themselves run as scripts, so they are read, not imported)."""
    seen: dict[str, None] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from package import module` names a module too; other names are skipped
                # when imported (they are no modules).
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for name in names:
                seen.setdefault(name, None)
    return list(seen)


class _WithoutRuntimeWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No runtime found" not in record.getMessage()


def preload() -> None:
    """Import what the pages will, then draw one figure in memory. A module that fails to
    import is left for the page to report, as it would without this."""
    # The cache decorators met at import look for Streamlit's runtime, which starts after
    # this, and say so; the caches themselves are made at the first call, inside the runtime.
    # (Streamlit sets its loggers' levels itself, so a filter, not a level.)
    cache_api = logging.getLogger("streamlit.runtime.caching.cache_data_api")
    quiet = _WithoutRuntimeWarning()
    cache_api.addFilter(quiet)
    try:
        for name in imported_modules():
            try:
                if importlib.util.find_spec(name) is not None:
                    importlib.import_module(name)
            except Exception as exc:  # the page that needs it shows the error in its own words
                log.debug("preloading %s failed: %s", name, exc)
    finally:
        cache_api.removeFilter(quiet)
    try:
        import plotly.graph_objects as go

        go.Figure([go.Bar(x=[1], y=[1]), go.Scatter(x=[1], y=[1])]).update_layout(title="warm").to_json()
    except Exception as exc:
        log.debug("warming Plotly failed: %s", exc)


def main(argv: list[str] | None = None) -> None:
    preload()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *(sys.argv[1:] if argv is None else argv)]
    cli.main()


if __name__ == "__main__":
    main()
