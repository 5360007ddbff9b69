"""The Health page's list of past health reports, and one report shown as it was mailed.

The report's HTML is data from the database: it is shown inside an iframe whose ``sandbox``
attribute allows no scripts, no forms and no same-origin access, nested in the frame
Streamlit draws (Streamlit's own frames allow scripts, so they alone would not do). Links
in it open in a new tab. The plain-text part is shown as text.
"""

from __future__ import annotations

import html

import pandas as pd

STATUS_LABELS = {"sent": "sent", "failed": "send failed (retried by the next run)", "sending": "sending",
                 "dry_run": "dry run (not sent)", "not_sent": "not sent (mail not configured)"}
FRAME_HEIGHT = 900
REPORTS_LISTED = 50


def sandboxed_frame(report_html: str, *, height: int = FRAME_HEIGHT) -> str:
    """A page holding only a sandboxed iframe whose document is ``report_html``."""
    document = html.escape(report_html, quote=True)
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head>"
            "<body style=\"margin:0\">"
            f"<iframe title=\"Health report\" sandbox=\"allow-popups allow-popups-to-escape-sandbox\" "
            f"referrerpolicy=\"no-referrer\" style=\"border:0;width:100%;height:{int(height) - 10}px\" "
            f"srcdoc=\"{document}\"></iframe></body></html>")


def report_table(reports: pd.DataFrame) -> pd.DataFrame:
    """The list as shown: period, status in words, recipients joined."""
    if reports.empty:
        return reports
    table = reports.copy()
    table["status"] = [STATUS_LABELS.get(status, status) for status in table["status"]]
    table["recipients"] = [", ".join(r) if isinstance(r, (list, tuple)) else (r or "") for r in table["recipients"]]
    return table[["id", "period_start", "period_end", "status", "recipients", "sent_at", "attempts", "trigger",
                  "subject", "error"]]


def report_label(row) -> str:
    """'#12 · 16–22 Nov 2026 · sent' for the chooser."""
    from jobs.health.report import period_label

    return f"#{row['id']} · {period_label(row['period_start'], row['period_end'])} · " \
           f"{STATUS_LABELS.get(row['status'], row['status'])}"
