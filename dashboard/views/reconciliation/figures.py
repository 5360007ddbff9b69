"""Pure builders for the Reconciliation page: query rows in, figures and tables out."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from core.checkout import format_money
from dashboard.components.charts import apply_layout, empty_figure

FIVE = [
    ("stripe_payments_found", "Stripe payments", "Checkout Sessions in the window whose "
     "payment_status is paid or no_payment_required."),
    ("local_registrations_found", "Local registrations", "Registrations created in the window."),
    ("mismatches_detected", "Mismatches", "Disagreements found: auto-fixed plus needing a person."),
    ("auto_fixed_count", "Auto-fixed", "Pending registrations marked completed (paid) or expired "
     "(session expired) after re-reading the session from Stripe."),
    ("manual_review_needed", "Need a person", "Mismatches that wait in the review queue below."),
]
KIND_LABELS = {
    "paid_but_pending": "paid, still pending",
    "expired_but_pending": "expired, still pending",
    "paid_but_failed": "paid, but failed locally",
    "paid_no_registration": "paid, no registration",
    "completed_not_paid": "completed, not paid",
    "completed_missing_in_stripe": "completed, no such session",
    "amount_mismatch": "amount differs",
}
ACTION_LABELS = {"auto_fixed": "auto-fixed", "manual_review": "needs a person"}
_ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
AUTO_COLOR, MANUAL_COLOR, FAILED_COLOR = "#2e7d32", "#ef6c00", "#c62828"
NO_RUNS = "No reconciliation runs yet"


def five_numbers(run: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, help) for the five numbers of a run row's reconciliation report."""
    return [(label, f"{int(run.get(key) or 0):,}", help_text) for key, label, help_text in FIVE]


PROGRESS_COUNTERS = ("pages_read", "sessions_checked", "stripe_requests", "mismatches_detected")


def progress_counters(row: dict[str, Any] | None, seen: dict[str, Any] | None) -> dict[str, Any]:
    """A running run's counters, never below what was already shown for the same run.

    The progress row can briefly be missing (between two reads, or before the run wrote its
    first page), and a counter must not jump back to zero on screen when it does.
    """
    row = row or {}
    seen = seen if seen and (not row.get("id") or seen.get("id") == row.get("id")) else {}
    merged = {"id": row.get("id") or seen.get("id"),
              "expected_sessions": row.get("expected_sessions") or seen.get("expected_sessions")}
    for key in PROGRESS_COUNTERS:
        merged[key] = max(int(row.get(key) or 0), int(seen.get(key) or 0))
    return merged


def progress_summary(counters: dict[str, Any]) -> tuple[str, float | None]:
    """(one line, share done or None) for a running run's counters (``progress_counters``).

    The total is the last comparable run's count of sessions: an estimate, said as one, and
    the bar stops short of full until the run really ends.
    """
    sessions, expected = counters["sessions_checked"], counters.get("expected_sessions")
    counts = (f"{counters['pages_read']:,} {'page' if counters['pages_read'] == 1 else 'pages'} read, "
              f"{counters['stripe_requests']:,} Stripe "
              f"{'request' if counters['stripe_requests'] == 1 else 'requests'}, "
              f"{counters['mismatches_detected']:,} "
              f"{'mismatch' if counters['mismatches_detected'] == 1 else 'mismatches'} so far")
    if expected:
        expected = int(expected)
        return (f"{sessions:,} of about {expected:,} sessions checked (the last run over the same "
                f"days checked {expected:,}); {counts}.", min(sessions / expected, 0.99))
    return (f"{sessions:,} {'session' if sessions == 1 else 'sessions'} checked (no earlier run to estimate the total from); {counts}."), None


def run_label(run_id: Any, started_at: Any) -> str:
    """A run on the history chart's axis: its number and start, to the minute (UTC)."""
    moment = pd.Timestamp(started_at)
    moment = moment.tz_convert("UTC") if moment.tzinfo is not None else moment
    return f"#{int(run_id)} · {moment:%b %d %H:%M}"


def run_history_chart(history: pd.DataFrame) -> go.Figure:
    """Per run, oldest first: auto-fixed and needing-a-person stacked; failed runs marked at zero.

    One evenly spaced bar per run, labelled "#12 · Nov 30 12:20": on a time axis, runs minutes
    apart got sub-second ticks ("12:20:24.5915") and bars too thin to see.
    """
    title = "Mismatches per run"
    if history.empty:
        return empty_figure(title, NO_RUNS)
    history = history.sort_values(["started_at", "id"])
    history = history.assign(run=[run_label(i, t) for i, t in zip(history["id"], history["started_at"], strict=True)])
    done = history[history["status"] == "completed"]
    failed = history[history["status"] == "failed"]
    fig = go.Figure()
    # Dry runs get hatched bars of their own: they counted mismatches but fixed and queued nothing.
    for dry, suffix, pattern in ((False, "", ""), (True, " (dry run)", "/")):
        runs = done[done["dry_run"].astype(bool) == dry]
        if dry and runs.empty:
            continue
        for column, name, color in (("auto_fixed_count", "auto-fixed", AUTO_COLOR),
                                    ("manual_review_needed", "need a person", MANUAL_COLOR)):
            fig.add_bar(x=runs["run"], y=runs[column], name=name + suffix, marker_color=color,
                        marker_pattern_shape=pattern, customdata=runs[["id"]].to_numpy(),
                        hovertemplate=f"run %{{customdata[0]}}: %{{y:,}} {name}{suffix}<extra></extra>")
    if not failed.empty:
        fig.add_scatter(x=failed["run"], y=[0] * len(failed), mode="markers", name="failed run",
                        marker=dict(symbol="x", size=12, color=FAILED_COLOR),
                        customdata=failed[["id", "error"]].fillna("").to_numpy(),
                        hovertemplate="run %{customdata[0]} failed: %{customdata[1]}<extra></extra>")
    fig.update_yaxes(title_text="mismatches", rangemode="tozero")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=list(history["run"]),
                     title_text="run started (UTC)")
    return apply_layout(fig, title, barmode="stack", hovermode="closest")


def history_table(history: pd.DataFrame) -> pd.DataFrame:
    """Runs newest first, with readable columns."""
    if history.empty:
        return history
    table = history.sort_values(["started_at", "id"], ascending=False)
    table = table.assign(mode=table["dry_run"].map({True: "dry run", False: "real"}),
                         seconds=(table["duration_ms"].fillna(0) / 1000).round(1))
    return table[["id", "started_at", "status", "trigger", "mode", "lookback_days",
                  "stripe_payments_found", "local_registrations_found", "mismatches_detected",
                  "auto_fixed_count", "manual_review_needed", "sessions_checked",
                  "stripe_requests", "seconds", "error"]]


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def kinds_table(kinds: pd.DataFrame) -> pd.DataFrame:
    """A run's items per kind and action (rows of ``reconciliation_kinds_for_run``) in words."""
    return kinds.assign(kind=kinds["kind"].map(kind_label),
                        action=kinds["action"].map(lambda a: ACTION_LABELS.get(a, a)))


def item_choice_label(item: dict[str, Any]) -> str:
    """One line naming an open item in the picker."""
    ref = item.get("stripe_checkout_session_id") or item.get("registration_id") or "-"
    critical = " · critical" if item.get("severity") == "critical" else ""
    return f"#{item['id']} {kind_label(item['kind'])}{critical} · {ref}"


def facts_table(details: dict[str, Any] | None) -> pd.DataFrame:
    """Both sides' facts of an item, one row per field: what Stripe says and the local row says."""
    details = details or {}
    stripe, local = details.get("stripe") or {}, details.get("local") or {}
    pairs = [("session / registration id", stripe.get("id"), local.get("registration_id")),
             ("status", _status(stripe), local.get("processing_status")),
             ("amount", format_money(stripe.get("amount_total"), stripe.get("currency")),
              format_money(local.get("amount_total"), local.get("currency"))),
             ("email", stripe.get("email"), local.get("email")),
             ("client_reference_id / session id", stripe.get("client_reference_id"),
              local.get("stripe_checkout_session_id")),
             ("created", stripe.get("created"), local.get("created_at")),
             ("payment intent / completed at", stripe.get("payment_intent"), local.get("completed_at"))]
    return pd.DataFrame(
        [{"field": name, "Stripe": _text(a) if stripe else "(no session)",
          "local": _text(b) if local else "(no registration)"} for name, a, b in pairs])


def _status(stripe: dict[str, Any]) -> str | None:
    if not stripe:
        return None
    return f"{stripe.get('status')} / {stripe.get('payment_status')}"


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) and value > 1_000_000_000:  # a Stripe timestamp
        return pd.Timestamp(value, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, str) and _ISO_MOMENT.match(value):  # a local timestamp, stored as ISO text
        try:
            moment = pd.Timestamp(value)
        except ValueError:
            return value
        moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)
