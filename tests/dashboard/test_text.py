"""External text stays text: Markdown, Plotly labels and table cells."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from dashboard.components.text import figure_literal, formula_safe, markdown_literal, plotly_literal
from dashboard.views.overview import figures as overview_figures
from dashboard.views.reconciliation import figures as rf

VIEWS = Path(__file__).resolve().parents[2] / "dashboard" / "views"
HOSTILE = [
    "![x](http://127.0.0.1:9/pixel)",
    "<img src=http://127.0.0.1:9/pixel>",
    "[click](javascript:alert(1))",
    "**bold** _em_ `code` # heading",
    ":red[alert] :material/lock: $x^2$",
    "line one\n\n- item\n1. item",
    "<script>alert(1)</script>",
    "a\\b",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_literal_leaves_no_markup(text):
    escaped = markdown_literal(text)
    assert "\n" not in escaped and "\r" not in escaped  # one line: no lists, headings or paragraphs
    # Every punctuation character is backslash-escaped, so CommonMark shows it as itself.
    unescaped = re.sub(r"\\[^A-Za-z0-9\s]", "", escaped)
    assert not re.search(r"[\\`*_{}\[\]<>()#+\-.!|~:$&\"'=^]", unescaped), unescaped
    # Dropping the escapes gives the text back.
    assert re.sub(r"\\(.)", r"\1", escaped) == re.sub(r"[\r\n]+", " ", text)


def test_plotly_labels_are_escaped_where_charts_are_drawn():
    types = pd.DataFrame({"event_type": ['<a href="http://127.0.0.1:9/">x</a>', "checkout.session.completed"],
                          "events": [3, 4], "completed": [1, 4], "failed": [2, 0]})
    fig = figure_literal(overview_figures.event_types_chart(types))
    labels = {label for trace in fig.data for label in trace.y}
    assert '&lt;a href="http://127.0.0.1:9/"&gt;x&lt;/a&gt;' in labels and "checkout.session.completed" in labels
    assert not any(isinstance(value, str) for value in fig.data[0].x)  # numbers untouched
    named = figure_literal(go.Figure(go.Bar(x=[1], y=[2], name="<b>n</b>")))
    assert named.data[0].name == "&lt;b&gt;n&lt;/b&gt;"
    assert plotly_literal(5) == 5 and plotly_literal(None) is None


def test_formula_cells_are_defused_and_numbers_kept():
    frame = pd.DataFrame({"text": ["=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\rx", "plain", None],
                          "n": [-1, 2, 3, 4, 5, 6, 7, 8]})
    safe = formula_safe(frame)
    assert list(safe["text"])[:7] == ["'=1+1", "'+cmd", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "plain"]
    assert list(safe["n"]) == list(frame["n"]) and frame["text"][0] == "=1+1"  # the input is not changed


def _literal_tooltip(node: ast.expr) -> bool:
    """A tooltip the code wrote itself (a string or f-string), or text through markdown_literal."""
    if isinstance(node, (ast.Constant, ast.JoinedStr)):
        return True
    if isinstance(node, ast.IfExp):
        return _literal_tooltip(node.body) and _literal_tooltip(node.orelse)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal_tooltip(node.left) and _literal_tooltip(node.right)
    if isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        return name == "markdown_literal"
    return False


def test_every_page_draws_tables_charts_and_tooltips_through_the_helpers():
    for view in VIEWS.parent.rglob("*.py"):
        if view.name == "text.py":
            continue
        source = view.read_text()
        assert not re.search(r"\b(st|left|right|col\w*)\.(dataframe|data_editor|table|plotly_chart)\(", source), view.name
        # Metric tiles too: text.metric_row wraps them rather than cutting their labels short.
        assert not re.search(r"\.metric\(", source), view.name
        # Streamlit renders help= tooltips as Markdown: only text the code wrote, or markdown_literal.
        for node in ast.walk(ast.parse(source)):
            for keyword in getattr(node, "keywords", []):
                if keyword.arg == "help":
                    assert _literal_tooltip(keyword.value), f"{view.name}:{keyword.value.lineno} help="


def test_hover_data_is_escaped_where_charts_are_drawn():
    runs = pd.DataFrame({"id": [7, 8], "started_at": pd.to_datetime(["2026-11-29", "2026-11-30"], utc=True),
                         "status": ["completed", "failed"], "error": [None, '<a href="http://127.0.0.1:9/">x</a>'],
                         "dry_run": [False, False], "auto_fixed_count": [1, 0], "manual_review_needed": [2, 0]})
    fig = figure_literal(rf.run_history_chart(runs))
    hover = [item for trace in fig.data if trace.customdata is not None for row in trace.customdata for item in row]
    assert '&lt;a href="http://127.0.0.1:9/"&gt;x&lt;/a&gt;' in hover
    assert not any(isinstance(item, str) and "<a" in item for item in hover)
    assert 8 in hover  # numbers stay numbers


def test_the_sidebar_verdict_tooltip_is_literal_markdown():
    from streamlit.testing.v1 import AppTest

    script = """
import streamlit as st
from dashboard import verdict_view
from datetime import datetime, timezone
from jobs.health.verdict import Reason, Verdict
st.navigation([st.Page(lambda: None, title="Errors", url_path="errors")], position="hidden")
verdict_view.register_pages({"": [st.Page(lambda: None, title="Errors", url_path="errors")]})
summary = "The last cleanup run failed: ![x](http://127.0.0.1:9/pixel) [click](http://evil.example) **now**"
verdict_view.sidebar(Verdict("degraded", (Reason("job_failed", "degraded", summary, "errors", {}),),
                             datetime.now(timezone.utc)))
"""
    at = AppTest.from_string(script).run()
    assert not at.exception
    [link] = at.sidebar.get("page_link")
    assert link.proto.help == markdown_literal(
        "The last cleanup run failed: ![x](http://127.0.0.1:9/pixel) [click](http://evil.example) **now**")


def test_tables_show_a_dash_not_none_for_empty_text_cells():
    import pandas as pd

    from dashboard.components.text import fill_missing_text

    frame = pd.DataFrame({"error": ["boom", None], "note": pd.Series([None, None], dtype=object), "runs": [1.0, None],
                          "at": pd.to_datetime(["2026-11-30", None])})
    filled = fill_missing_text(frame)
    assert list(filled["error"]) == ["boom", "–"] and list(filled["note"]) == ["–", "–"]
    # Numbers and times keep their type (their column formats still apply).
    assert filled["runs"].dtype == "float64" and str(filled["at"].dtype).startswith("datetime64")


def test_a_link_column_keeps_its_empty_cells_empty():
    import pandas as pd
    import streamlit as st

    from dashboard.components.text import fill_missing_text, link_columns

    config = {"review": st.column_config.LinkColumn("Review item", display_text="review item"),
              "email": "E-mail", "note": st.column_config.TextColumn("Note")}
    assert link_columns(config) == ["review"]
    frame = pd.DataFrame({"email": ["a@example.com", None], "review": ["/reconciliation?item=3", None]})
    filled = fill_missing_text(frame, keep=link_columns(config))
    # "–" in a link column would be drawn as a "review item" link to "–": the cell stays empty
    # (the table's placeholder shows it as "–").
    assert list(filled["email"]) == ["a@example.com", "–"]
    assert filled["review"].iloc[0] == "/reconciliation?item=3" and pd.isna(filled["review"].iloc[1])


def test_a_chart_drawn_again_from_the_same_rows_is_not_built_again_and_escaped_once():
    from dashboard.components.charts import FigureMemo

    built = []

    def builder(frame, *, title):
        built.append(title)
        return go.Figure(go.Bar(x=list(frame["name"]), y=list(frame["n"]), name=title))

    memo = FigureMemo(max_entries=2)
    rows = pd.DataFrame({"name": ["<b>a</b>", "b"], "n": [1, 2]})
    first = memo.figure(builder, rows, title="<i>t</i>", finish=figure_literal)
    # Equal rows in a new frame (cached query results come back as copies): the kept figure,
    # its labels escaped once, not twice.
    again = memo.figure(builder, rows.copy(), title="<i>t</i>", finish=figure_literal)
    assert again is first and built == ["<i>t</i>"]
    assert list(again.data[0].x) == ["&lt;b&gt;a&lt;/b&gt;", "b"] and again.data[0].name == "&lt;i&gt;t&lt;/i&gt;"
    # Any change of value is a new figure: a row's value, the rows' order, an argument.
    changed = rows.assign(n=[1, 3])
    assert memo.figure(builder, changed, title="<i>t</i>", finish=figure_literal) is not first
    assert list(memo.figure(builder, rows.iloc[::-1], title="<i>t</i>").data[0].x) == ["b", "<b>a</b>"]
    assert memo.figure(builder, rows, title="other").data[0].name == "other"
    assert len(built) == 4
    # At most max_entries figures are kept: the first is long gone, and is built again.
    memo.figure(builder, rows, title="<i>t</i>", finish=figure_literal)
    assert len(built) == 5


def test_an_input_that_cannot_be_compared_by_value_is_built_every_time():
    from dashboard.components.charts import FigureMemo

    calls = []
    memo = FigureMemo()
    for _ in range(2):
        memo.figure(lambda thing: calls.append(thing) or go.Figure(), object())
    assert len(calls) == 2


def test_a_cleared_memo_builds_again():
    from dashboard.components.charts import FigureMemo

    calls = []
    memo = FigureMemo()
    rows = pd.DataFrame({"n": [1]})
    memo.figure(lambda frame: calls.append(1) or go.Figure(), rows)
    memo.clear()
    memo.figure(lambda frame: calls.append(1) or go.Figure(), rows)
    assert len(calls) == 2
