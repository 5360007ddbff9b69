"""Figure builders: what each chart plots, from small frames shaped like the queries' rows."""

import math
from datetime import datetime, timedelta, timezone

import pandas as pd

from dashboard.components import charts
from dashboard.views.errors import figures as errors_figures
from dashboard.views.funnel import figures as funnel_figures
from dashboard.views.overview import figures as overview_figures

T0 = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
HOURS = [T0 + timedelta(hours=h) for h in range(3)]


def buckets():
    return pd.DataFrame({"bucket": HOURS, "completed": [8, 0, 3], "failed": [2, 0, 1],
                         "processing": [0, 0, 1], "pending": [1, 0, 0]})


def no_data(fig) -> bool:
    return not fig.data and any("No " in a.text for a in fig.layout.annotations)


def test_volume_chart_stacks_one_bar_trace_per_status_in_fixed_colours():
    fig = overview_figures.volume_chart(buckets(), bucket="hour")
    assert [t.name for t in fig.data] == ["completed", "failed", "processing", "pending"]
    assert fig.layout.barmode == "stack"
    failed = fig.data[1]
    assert list(failed.y) == [2, 0, 1] and failed.marker.color == charts.STATUS_COLORS["failed"]
    assert "per hour" in fig.layout.title.text


def test_volume_chart_says_when_there_is_nothing():
    empty = buckets().assign(completed=0, failed=0, processing=0, pending=0)
    assert no_data(overview_figures.volume_chart(empty))
    assert no_data(overview_figures.volume_chart(empty.iloc[0:0]))


def test_failure_rate_leaves_gaps_where_nothing_finished():
    rates = overview_figures.failure_rates(buckets())
    assert rates[0] == 0.2 and math.isnan(rates[1]) and rates[2] == 0.25
    fig = overview_figures.failure_rate_chart(buckets())
    assert fig.data[0].connectgaps is False
    assert fig.layout.yaxis.tickformat == ".0%"


def test_failure_rate_chart_with_only_unfinished_events():
    only_pending = buckets().assign(completed=0, failed=0)
    assert no_data(overview_figures.failure_rate_chart(only_pending))


def test_status_chart_is_bars_with_counts_and_shares_and_skips_zero_statuses():
    fig = overview_figures.status_chart(pd.DataFrame({"processing_status": ["completed", "failed", "pending"],
                                             "events": [9259, 2215, 0]}))
    (bars,) = fig.data
    assert bars.type == "bar" and bars.orientation == "h"  # no donut
    assert list(bars.y) == ["failed", "completed"]  # drawn bottom-up: completed on top
    assert list(bars.x) == [2215, 9259]
    assert list(bars.text) == ["2,215 (19.3%)", "9,259 (80.7%)"]
    assert no_data(overview_figures.status_chart(pd.DataFrame({"processing_status": [], "events": []})))


def test_event_types_chart_shows_largest_on_top_and_the_in_progress_rest():
    types = pd.DataFrame({"event_type": ["a", "b", "c"], "events": [10, 30, 20],
                          "failed": [1, 3, 0], "completed": [9, 25, 20]})
    fig = overview_figures.event_types_chart(types, top=2)
    completed, failed, rest = fig.data
    assert list(completed.y) == ["c", "b"]  # horizontal bars draw bottom-up: largest last
    assert list(failed.x) == [0, 3] and list(rest.x) == [0, 2]
    # The status names are the volume chart's: no "in progress" beside "pending/processing".
    assert rest.name == "pending or processing"


def test_every_chart_speaks_of_statuses_with_the_same_names():
    volume = {t.name for t in overview_figures.volume_chart(buckets()).data}
    statuses = overview_figures.status_chart(pd.DataFrame({"processing_status": charts.STATUSES,
                                                  "events": [1, 1, 1, 1]}))
    assert volume == set(statuses.data[0].y) == set(charts.STATUS_LABELS.values())


def test_charts_write_counts_in_full_with_thousands_separators():
    # Plotly would write 11474 as "11.474k" on an axis or in a hover beside a "9259" tile.
    for fig in [overview_figures.volume_chart(buckets()), overview_figures.event_types_chart(pd.DataFrame(
            {"event_type": ["a"], "events": [11474], "failed": [1], "completed": [11473]}))]:
        for axis in (fig.layout.xaxis, fig.layout.yaxis):
            assert axis.exponentformat == "none" and axis.separatethousands is True
    # A percent axis keeps its own format.
    assert overview_figures.failure_rate_chart(buckets()).layout.yaxis.tickformat == ".0%"


def test_the_bucket_still_filling_up_is_marked():
    # The window ends at 12:31: the 12:00 bar holds 31 minutes, not a drop in traffic.
    open_window = (T0 - timedelta(hours=21, minutes=29), T0 + timedelta(hours=2, minutes=31))
    fig = overview_figures.volume_chart(buckets(), bucket="hour", x_range=open_window)
    (band,) = fig.layout.shapes
    assert (pd.Timestamp(band.x0), pd.Timestamp(band.x1)) == (
        pd.Timestamp("2026-11-20 11:30"), pd.Timestamp("2026-11-20 12:30"))
    assert [a.text for a in fig.layout.annotations] == ["this hour so far"]
    # Day buckets: the current day is marked as a day.
    daily = overview_figures.volume_chart(buckets(), bucket="day", x_range=open_window)
    assert [a.text for a in daily.layout.annotations] == ["this day so far"]
    # A window of whole buckets (a custom range of days) has no partial bucket.
    whole = (datetime(2026, 11, 19, tzinfo=timezone.utc), datetime(2026, 11, 21, tzinfo=timezone.utc))
    assert not overview_figures.volume_chart(buckets(), bucket="day", x_range=whole).layout.shapes


def test_the_partial_bucket_label_cannot_reach_the_legend():
    # The label used to start at the band's left edge and run past the plot's right side,
    # over the legend. Now it ends at the band's right edge, inside the plot area, and the
    # legend stands beside the plot area (paper x >= 1), so they cannot meet.
    open_window = (T0 - timedelta(hours=21, minutes=29), T0 + timedelta(hours=2, minutes=31))
    for bucket in ("hour", "day"):
        fig = overview_figures.volume_chart(buckets(), bucket=bucket, x_range=open_window)
        (label,) = fig.layout.annotations
        (band,) = fig.layout.shapes
        assert label.xref == "x" and label.xanchor == "right" and not label.showarrow
        assert pd.Timestamp(label.x) == pd.Timestamp(band.x1)
        assert pd.Timestamp(label.x) <= pd.Timestamp(fig.layout.xaxis.range[1])  # right end inside the plot
        assert label.yref == "paper" and label.y == 1 and label.yanchor == "top"  # hangs down from the top
        legend = fig.layout.legend
        assert legend.orientation == "v" and legend.x >= 1 and legend.xanchor == "left"


def test_failures_by_type_chart_one_trace_per_type():
    failures = pd.DataFrame({"bucket": [HOURS[0], HOURS[0], HOURS[2]], "event_type": ["x", "y", "y"],
                             "failed": [2, 1, 4]})
    fig = errors_figures.failures_by_type_chart(failures)
    assert {t.name: list(t.y) for t in fig.data} == {"x": [2], "y": [1, 4]}
    assert no_data(errors_figures.failures_by_type_chart(failures.iloc[0:0]))


def test_outcomes_chart():
    outcomes = pd.DataFrame({"event_type": ["a", "b"], "still_failing": [2, 1], "recovered": [5, 0],
                             "retrying": [1, 0]})
    fig = errors_figures.outcomes_chart(outcomes)
    assert {t.name: list(t.x) for t in fig.data} == {"still failing": [1, 2], "retrying": [0, 1],
                                                      "recovered": [0, 5]}


def funnel_rows():
    return pd.DataFrame({"bucket": HOURS[:2], "created": [10, 0], "checkout_started": [8, 0],
                         "paid": [6, 0], "completed": [5, 0]})


def test_funnel_totals_and_chart():
    totals = funnel_figures.funnel_totals(funnel_rows())
    assert totals == {"created": 10, "checkout_started": 8, "paid": 6, "completed": 5}
    fig = funnel_figures.funnel_chart(totals)
    assert list(fig.data[0].x) == [10, 8, 6, 5]
    assert list(fig.data[0].y) == ["Created", "Checkout started", "Paid", "Completed"]
    assert no_data(funnel_figures.funnel_chart(funnel_figures.funnel_totals(funnel_rows().iloc[0:0])))


def test_conversion_rates_per_bucket_leave_empty_buckets_blank():
    rates = funnel_figures.conversion_rates(funnel_rows())
    assert list(rates.loc[0, ["checkout_started", "paid", "completed"]]) == [0.8, 0.6, 0.5]
    assert rates.loc[1, ["checkout_started", "paid", "completed"]].isna().all()
    fig = funnel_figures.conversion_chart(funnel_rows())
    assert [t.name for t in fig.data] == ["Checkout started", "Paid", "Completed"]


def test_every_builder_returns_a_figure_that_serialises():
    for fig in [overview_figures.volume_chart(buckets()), overview_figures.failure_rate_chart(buckets()),
                funnel_figures.conversion_chart(funnel_rows())]:
        assert fig.to_json()


def test_time_charts_span_the_whole_window_in_utc():
    # Data from 10:00 to 12:00 in a window 08:30-14:30: the quiet hours at either end stay
    # visible, and the bars of the first and last buckets are not cut in half.
    window = (T0 - timedelta(minutes=90), T0 + timedelta(hours=4, minutes=30))
    bars = overview_figures.volume_chart(buckets(), bucket="hour", x_range=window)
    assert bars.layout.xaxis.title.text == "time (UTC)"
    start, end = (pd.Timestamp(v) for v in bars.layout.xaxis.range)
    assert start == pd.Timestamp("2026-11-20 08:00") and end == pd.Timestamp("2026-11-20 15:00")
    # Lines get a little room at either end (a fiftieth of six hours), so end markers show whole.
    line = overview_figures.failure_rate_chart(buckets(), x_range=window)
    assert [pd.Timestamp(v) for v in line.layout.xaxis.range] == [
        pd.Timestamp("2026-11-20 08:22:48"), pd.Timestamp("2026-11-20 14:37:12")]
    # A first bucket that starts before the window (its hour began earlier) is still shown whole.
    late_start = (T0 + timedelta(minutes=20), T0 + timedelta(hours=3))
    start, _ = (pd.Timestamp(v) for v in overview_figures.volume_chart(buckets(), x_range=late_start).layout.xaxis.range)
    assert start == pd.Timestamp("2026-11-20 09:30")
    # Without a window the axis fits the data, as before.
    assert overview_figures.volume_chart(buckets()).layout.xaxis.range is None


def test_job_runs_chart_tells_jobs_apart_and_shows_each_runs_status():
    from dashboard.views.health import figures as health_figures

    history = pd.DataFrame({
        "job": ["reconcile", "cleanup", "reconcile", "health-snapshot"],
        "status": ["completed", "completed", "failed", "needs_review"],
        "started_at": HOURS + [T0 + timedelta(hours=3)],
        "duration_ms": [12000, 3000, 500, 800],
    })
    fig = health_figures.job_duration_chart(history)
    assert [t.name for t in fig.data] == ["cleanup", "health-snapshot", "reconcile"]  # one legend entry per job
    reconcile = fig.data[2]
    assert list(reconcile.y) == [12.0, 0.5] and list(reconcile.marker.symbol) == ["circle", "x"]
    assert [row[0] for row in reconcile.customdata] == ["completed", "failed"]
    assert fig.data[1].customdata[0][0] == "needs review"
    assert fig.layout.title.text == "Job runs" and "✕ failed" in fig.layout.title.subtitle.text
