"""Every SQL statement of the project lives in a documented ``-- name:`` block of a .sql file
(queries/, jobs/, tracking/, core/, dashboard/; migrations are scripts, not statements), is
loaded through core.sql, and every call site names exactly the parameters its statement
binds. core.sql checks that at call time; this test reads every call site, so a call no test
happens to run is checked too."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from core.sql import Statements, load_package

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "jobs", "tracking", "queries", "dashboard")
SQL_FILES = [(package, entry.name) for package in PACKAGES
             for entry in sorted(resources.files(package).iterdir(), key=lambda e: e.name)
             if entry.name.endswith(".sql")]
PYTHON_FILES = sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py"))
# Functions that run a named dashboard query: name -> index of the query-name argument
# (the dashboard's data helpers, queries' own, and the health report's rows/row).
DASHBOARD_QUERY_FUNCTIONS = {"query_df": 0, "query_row": 0, "fetch": 0, "fetch_df": 1, "fetch_one": 1,
                             "rows": 1, "row": 1}
STATEMENT_METHODS = {"execute", "one", "all", "scalar"}
# Dollar-quoted bodies ($$ ... $$, $fn$ ... $fn$) and quoted strings ('it''s').
LITERALS = re.compile(r"\$(\w*)\$.*?\$\1\$|'(?:[^']|'')*'", re.DOTALL)


@pytest.mark.parametrize("package, filename", SQL_FILES, ids=[f"{p}/{f}" for p, f in SQL_FILES])
def test_every_statement_is_documented_and_binds_named_parameters(package, filename):
    statements = load_package(package, filename)
    assert statements, f"{package}/{filename} holds no statement"
    for query in statements.values():
        assert query.doc, f"{query.source}: add a comment under the name saying what it does"
        code = LITERALS.sub("''", query.sql)  # format('%s', ...) inside a string is PostgreSQL's own
        assert "%s" not in code and "%(" not in code, f"{query.source}: use :named parameters"


@pytest.mark.parametrize("path", PYTHON_FILES, ids=[str(p.relative_to(REPO)) for p in PYTHON_FILES])
def test_no_sql_is_built_in_python(path):
    """sa.text() is core.sql's business: a statement in Python code escapes the checks above."""
    if path == REPO / "core" / "sql.py":
        return
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            assert name != "text" or not node.args or not isinstance(node.args[0], ast.Constant), \
                f"{path.relative_to(REPO)}:{node.lineno}: move this statement into a .sql file"


# --- call sites -------------------------------------------------------------------------------

def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def _loaded(value: ast.AST) -> Statements | None:
    """The statements a module-level expression loads (a load_package call in it)."""
    for node in ast.walk(value):
        if isinstance(node, ast.Call) and all(isinstance(a, ast.Constant) for a in node.args):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            args = [a.value for a in node.args]
            if func == "load_package" and args:
                return load_package(*args)
    return None


def _sources() -> dict[Path, str]:
    return {path: path.read_text(encoding="utf-8") for path in PYTHON_FILES}


def _statement_names(sources: dict[Path, str]) -> dict[str, dict[str, Statements]]:
    """Per module: the names bound to a set of statements, loaded there or imported."""
    trees = {_module_name(path): ast.parse(text) for path, text in sources.items()}
    names: dict[str, dict[str, Statements]] = {module: {} for module in trees}
    for module, tree in trees.items():
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and (loaded := _loaded(node)) is not None:
                names[module][node.name + "()"] = loaded  # a function returning statements
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                loaded = _loaded(node.value)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if loaded is not None and isinstance(target, ast.Name):
                        names[module][target.id] = loaded
    for _ in range(3):  # imports of imports
        for module, tree in trees.items():
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module in names:
                    for alias in node.names:
                        if alias.name in names[node.module]:
                            names[module][alias.asname or alias.name] = names[node.module][alias.name]
    return names


def _keywords(call: ast.Call) -> set[str] | None:
    """The keyword names of a call, or None when some are spread in with ** (not checkable)."""
    if any(k.arg is None for k in call.keywords):
        return None
    return {k.arg for k in call.keywords}


def _call_sites(sources: dict[Path, str]):
    """(where, statements, query name, parameter names or None) for every call site found."""
    names = _statement_names(sources)
    queries = load_package("queries")
    for path, text in sources.items():
        module = _module_name(path)
        known = names[module]
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            func = node.func
            attr = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call) \
                    and isinstance(func.value.func, ast.Name):
                owner = func.value.func.id + "()"  # queue_sql().all(...)
            # SQL.execute(conn, "name", **params) and .one / .all / .scalar
            if attr in STATEMENT_METHODS and owner in known and len(node.args) >= 2 \
                    and isinstance(node.args[1], ast.Constant):
                yield where, known[owner], node.args[1].value, _keywords(node)
            # conn.execute(SQL["name"], {...})
            elif attr == "execute" and node.args and isinstance(node.args[0], ast.Subscript) \
                    and isinstance(node.args[0].value, ast.Name) and node.args[0].value.id in known \
                    and isinstance(node.args[0].slice, ast.Constant):
                params: set[str] | None = set()
                if len(node.args) > 1:
                    given = node.args[1]
                    params = ({k.value for k in given.keys} if isinstance(given, ast.Dict)
                              and all(isinstance(k, ast.Constant) for k in given.keys) else None)
                yield where, known[node.args[0].value.id], node.args[0].slice.value, params
            # writes.write(SQL, "name", actor=..., **params)
            elif attr == "write" and owner == "writes" and len(node.args) >= 2 \
                    and isinstance(node.args[0], ast.Name) and node.args[0].id in known \
                    and isinstance(node.args[1], ast.Constant):
                yield where, known[node.args[0].id], node.args[1].value, _keywords(node)
            # the dashboard's query_df("name", **params), fetch_df(bind, "name", ...), ...
            elif attr in DASHBOARD_QUERY_FUNCTIONS and len(node.args) > DASHBOARD_QUERY_FUNCTIONS[attr] \
                    and isinstance(node.args[DASHBOARD_QUERY_FUNCTIONS[attr]], ast.Constant):
                yield where, queries, node.args[DASHBOARD_QUERY_FUNCTIONS[attr]].value, _keywords(node)


def test_every_call_names_exactly_its_statements_parameters():
    sites = list(_call_sites(_sources()))
    checked = [site for site in sites if site[3] is not None]
    problems = []
    for where, statements, name, params in sites:
        if name not in statements:
            problems.append(f"{where}: no statement named {name!r}")
        elif params is not None and params != statements[name].parameters:
            problems.append(f"{where}: {name} binds {sorted(statements[name].parameters)}, "
                            f"the call gives {sorted(params)}")
    assert problems == []
    # The scan really finds the call sites (jobs, tracking, dashboard pages, writes).
    assert len(checked) >= 80, len(checked)
    assert {where.split("/")[0] for where, *_ in checked} >= {"core", "jobs", "tracking", "dashboard"}


def test_a_wrong_parameter_name_at_a_call_site_is_found():
    """The scan above can fail: a misspelt parameter in a page is reported with its line."""
    sources = _sources()
    page = REPO / "dashboard" / "views" / "health" / "page.py"
    broken = sources[page].replace('query_df("cleanup_history", limit=', 'query_df("cleanup_history", limt=')
    assert broken != sources[page]
    problems = [(where, name) for where, statements, name, params in _call_sites({**sources, page: broken})
                if params is not None and params != statements[name].parameters]
    assert [name for _, name in problems] == ["cleanup_history"]
    assert problems[0][0].startswith("dashboard/views/health/page.py:")


# --- what the receiver loads ----------------------------------------------------------------

def test_importing_the_receiver_loads_no_dashboard_libraries():
    code = ("import sys, tracking.receiver\n"
            "heavy = sorted(m for m in ('pandas', 'plotly', 'streamlit', 'dashboard', 'queries') if m in sys.modules)\n"
            "print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
