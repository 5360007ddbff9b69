"""The architecture, enforced over the import graph (every import, also those inside functions):

    dashboard -> jobs -> {tracking, local_stripe, queries} -> core

A package imports only from layers below it and its own; the product never imports the
harness (devharness, bench, scripts, tests); no module takes part in an import cycle; a
dashboard page loads only the jobs it runs. The command line lists its commands without
importing them, and no job reaches back into the CLI for exit codes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BELOW_THE_DASHBOARD = ("core", "jobs", "tracking", "queries", "local_stripe")
# Each product package's layer: a package imports only packages of lower layers (and itself).
LAYERS = {"core": 0, "migrations": 0, "queries": 1, "tracking": 1, "local_stripe": 1, "jobs": 2, "dashboard": 3}
HARNESS = ("devharness", "bench", "scripts", "tests")


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


# --- the import graph ------------------------------------------------------------------------

def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(packages=tuple(LAYERS)) -> dict[str, set[str]]:
    """Module -> the project modules it imports. ``from a import b`` is an import of ``a.b``
    when that is a module, else of ``a``. A module's own packages are no edge: Python runs
    them before the module anyway."""
    files = python_files(*packages)
    modules = {module_name(path) for path in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        me = module_name(path)
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    name = f"{node.module}.{alias.name}"
                    edges.add(name if name in modules else node.module)
        graph[me] = {e for e in edges if e in modules and e != me and not me.startswith(e + ".")}
    return graph


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that go up a layer, sideways into another package of the same layer, or into the harness."""
    found = []
    for module, imports in sorted(graph.items()):
        top = module.split(".")[0]
        for imported in sorted(imports):
            other = imported.split(".")[0]
            if other == top:
                continue
            if other in HARNESS or other not in LAYERS or LAYERS[other] >= LAYERS[top]:
                found.append(f"{module} imports {imported}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_layers_import_downwards_only():
    assert layer_violations(import_graph()) == []


def test_no_module_takes_part_in_an_import_cycle():
    assert cycles(import_graph()) == []


def test_the_checks_catch_a_cycle_and_an_upward_import():
    graph = import_graph()
    [cycle] = cycles({**graph, "jobs.runtime": graph["jobs.runtime"] | {"jobs.cleanup.command"}})
    assert {"jobs.runtime", "jobs.cleanup.command"} <= set(cycle)
    assert layer_violations({**graph, "core.db": graph["core.db"] | {"jobs.runtime"}}) == [
        "core.db imports jobs.runtime"]
    assert layer_violations({**graph, "tracking.receiver": {"queries"}}) == ["tracking.receiver imports queries"]
    assert layer_violations({**graph, "jobs.runtime": {"devharness.database"}}) == [
        "jobs.runtime imports devharness.database"]


# What every page loads for the sidebar's verdict and the background-job component, and the
# jobs each page starts or calls on top (the Health page runs cleanup and shows the reports;
# Reconciliation runs reconcile, resolves review items and sweeps; Alerts acts on alerts).
EVERY_PAGE = {"jobs.alerting.rules", "jobs.health.verdict", "jobs.heartbeats", "jobs.runtime",
              "jobs.schedule.timetable"}
PAGE_JOBS = {
    "overview": (), "events": (), "funnel": (), "errors": (),
    "alerts": ("jobs.alerting",),
    "health": ("jobs.cleanup.run", "jobs.cleanup.history", "jobs.health.snapshot", "jobs.health.report",
               "jobs.health.report_data", "jobs.cli_support"),
    "reconciliation": ("jobs.reconcile", "jobs.replay.sweep", "jobs.replay.redeliver",
                       "jobs.replay.stripe_endpoints", "jobs.stripe_gateway"),
}


def pages(graph: dict[str, set[str]]) -> dict[str, str]:
    return {module.split(".")[2]: module for module in graph
            if module.startswith("dashboard.views.") and module.endswith(".page")}


def jobs_loaded_beyond_need(graph: dict[str, set[str]], page: str, module: str) -> list[str]:
    return sorted(m for m in reachable(graph, module) if m.startswith("jobs.") and m not in EVERY_PAGE
                  and not any(m == allowed or m.startswith(allowed + ".") for allowed in PAGE_JOBS[page]))


def test_every_page_is_listed():
    assert set(pages(import_graph())) == set(PAGE_JOBS)


@pytest.mark.parametrize("page", sorted(PAGE_JOBS))
def test_a_page_loads_only_the_jobs_it_runs(page):
    graph = import_graph()
    assert jobs_loaded_beyond_need(graph, page, pages(graph)[page]) == []


def test_the_page_check_catches_a_page_that_loads_the_scheduler():
    graph = import_graph()
    page = pages(graph)["overview"]
    assert jobs_loaded_beyond_need({**graph, page: graph[page] | {"jobs.schedule.runner"}}, "overview", page)
