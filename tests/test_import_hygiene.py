"""The layers import downwards only: core <- queries, tracking, jobs <- dashboard. The command
line lists its commands without importing them, the receiver without the dashboard's
libraries (tests/test_sql_files.py), and no job reaches back into the CLI for exit codes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BELOW_THE_DASHBOARD = ("core", "jobs", "tracking", "queries")


def imported_modules(path: Path) -> list[tuple[int, str, bool]]:
    """(line, module, inside a function) for every import of a file."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.append((child.lineno, child.module, in_function))
                found.extend((child.lineno, f"{child.module}.{alias.name}", in_function) for alias in child.names)
            visit(child, nested)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def python_files(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (REPO / package).rglob("*.py"))


def loaded_after(code: str) -> set[str]:
    """Top-level packages in sys.modules after running ``code`` in a fresh interpreter."""
    probe = code + "\nimport sys\nprint('LOADED', *sorted({m.split('.')[0] for m in sys.modules}))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.splitlines()[-1].split()[1:])


@pytest.mark.parametrize("path", python_files(*BELOW_THE_DASHBOARD),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_below_the_dashboard_imports_it(path):
    upward = [f"{path.relative_to(REPO)}:{line}: {module}" for line, module, _ in imported_modules(path)
              if module.split(".")[0] in ("dashboard", "streamlit")]
    assert upward == []


@pytest.mark.parametrize("path", [p for p in python_files("jobs") if p.name not in ("cli.py", "__main__.py")],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_jobs_take_exit_codes_from_core_not_from_the_cli(path):
    back = [f"{path.relative_to(REPO)}:{line}" for line, module, _ in imported_modules(path)
            if module == "jobs.cli" or module.startswith("jobs.cli.")]
    assert back == [], "import EXIT_* from core.errors"


def test_listing_the_commands_imports_none_of_them():
    loaded = loaded_after("from jobs.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert not loaded & {"dashboard", "streamlit", "apscheduler", "stripe", "pandas", "plotly"}


def test_every_command_loads_without_the_dashboard():
    # build_parser() without argv imports every command module with its options.
    loaded = loaded_after("from jobs.cli import build_parser\nbuild_parser()")
    assert "apscheduler" in loaded  # the probe did import the commands (schedule needs it)
    assert not loaded & {"dashboard", "streamlit", "plotly"}


def test_the_help_text_is_each_modules_own():
    import importlib

    from jobs.cli import COMMANDS, command_help

    for module_name in COMMANDS.values():
        assert command_help(module_name) == importlib.import_module(module_name).HELP
