"""The Health page's list of health reports (AppTest), and the sandbox the HTML is shown in."""

from __future__ import annotations

import re
from datetime import timedelta

from dashboard.views.health import reports
from jobs.health import report as health_report
from tests.support.apptest import open_dashboard
from tests.support.report_week import END, NOW, build_week


def test_the_frame_sandboxes_the_report_and_escapes_it():
    page = reports.sandboxed_frame('<p onclick="x()">a & "b"</p><script>alert(1)</script>')
    [frame] = re.findall(r"<iframe[^>]*>", page)
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame
    assert "allow-scripts" not in page and "allow-same-origin" not in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;x()&quot;" in page  # the markup cannot leave the srcdoc attribute


def test_health_page_lists_reports_and_shows_one(db, login_off):
    build_week(db)
    health_report.run(db, now=NOW, end=END.date(), recipients=["ops@example.org"], trigger="cli")
    health_report.run(db, now=NOW + timedelta(days=7), end=(END + timedelta(days=7)).date(), trigger="cli",
                      not_sent_reason="not mailed: MONITOR_SMTP_URL is not set")
    at = open_dashboard("views/health/page.py")
    assert not at.exception, at.exception
    table = next(el.value for el in at.dataframe if "subject" in el.value.columns)
    assert table["status"].tolist() == ["not sent (mail not configured)", "dry run (not sent)"]
    assert table["recipients"].tolist() == ["", "ops@example.org"]
    chooser = at.selectbox(key="health_report_choice")
    assert chooser.options[1] == "#1 · 16–22 Nov 2026 · dry run (not sent)"
    chooser.select(1).run()
    [frame] = at.get("iframe")
    assert "sandbox=" in frame.proto.srcdoc and "Health report, 16–22 Nov 2026" in frame.proto.srcdoc
    at.toggle(key="health_report_as_text").set_value(True).run()
    assert not at.exception
    assert any("HEALTH REPORT, 16–22 Nov 2026" in code.value for code in at.code)


def test_health_page_without_reports_says_how_to_make_one(db, login_off):
    at = open_dashboard("views/health/page.py")
    assert not at.exception
    assert any("No health report yet" in info.value for info in at.info)
