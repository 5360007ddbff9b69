"""The hourly and daily rollups (migrations/functions/event_rollups.sql)
stay equal to counts over webhook_events through random histories: handler deliveries,
failures, retries, reclaims of silent workers, late updates, archival by cleanup, deletes;
windows of whole UTC days, partial days and partial hours read them exactly, also in a
session time zone with daylight saving; and the p95 read from the duration histogram stays
within its documented error."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from devharness import empty_tables
from jobs.cleanup import command as cleanup
from queries import fetch_one
from tests.support.factories import add_event

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
TYPES = ["checkout.session.completed", "charge.succeeded", "payment_intent.succeeded"]
STATUSES = ["pending", "processing", "completed", "failed"]
CATEGORIES = [None, "network", "database", "validation"]
MESSAGES = [None, "timeout after {n} ms for evt_1Nx{n}abcdef", "deadlock detected on row {n}",
            "Card declined for user{n}@example.com"]

RAW = """
    SELECT date_trunc(:grain, created_at, 'UTC') AS bucket, event_type, processing_status,
           coalesce(error_category, '') AS error_category, coalesce(error_fingerprint, '') AS error_fingerprint,
           count(*) AS events, count(*) FILTER (WHERE attempts > 1) AS retried
    FROM webhook_events
    WHERE created_at >= :start AND created_at < :end
    GROUP BY 1, 2, 3, 4, 5"""
# webhook_window_counts' rows cover a whole UTC day or an hour: counted per day they equal
# the raw counts per day; webhook_window_counts_hourly's per hour the raw counts per hour.
WINDOWED = """
    SELECT date_trunc('day', bucket, 'UTC'), event_type, processing_status, error_category, error_fingerprint,
           sum(events) AS events, sum(retried) AS retried
    FROM webhook_window_counts(:start, :end)
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(events) <> 0 OR sum(retried) <> 0"""
WINDOWED_HOURLY = """
    SELECT bucket, event_type, processing_status, error_category, error_fingerprint,
           sum(events) AS events, sum(retried) AS retried
    FROM webhook_window_counts_hourly(:start, :end)
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(events) <> 0 OR sum(retried) <> 0"""
# The least example per fingerprint over a window: the daily level keeps its hours' least.
EXAMPLES = """
    SELECT error_fingerprint, min(example) FROM {function}(:start, :end)
    WHERE error_fingerprint <> '' GROUP BY 1 HAVING sum(events) > 0"""
RAW_DURATIONS = """
    SELECT processing_status, webhook_duration_bin(processing_duration_ms) AS bin, count(*) AS events
    FROM webhook_events
    WHERE created_at >= :start AND created_at < :end AND processing_duration_ms IS NOT NULL
    GROUP BY 1, 2"""
WINDOWED_DURATIONS = "SELECT processing_status, bin, events FROM webhook_duration_window(:start, :end)"
HOURLY_BY_DAY = """
    SELECT date_trunc('day', bucket, 'UTC'), event_type, processing_status, error_category, error_fingerprint,
           sum(events), sum(retried), min(example)
    FROM webhook_event_rollup GROUP BY 1, 2, 3, 4, 5 HAVING sum(events) <> 0 OR sum(retried) <> 0"""
DAILY = """
    SELECT day, event_type, processing_status, error_category, error_fingerprint, events, retried, example
    FROM webhook_event_rollup_daily WHERE events <> 0 OR retried <> 0"""


def rows(conn, sql, **params) -> set[tuple]:
    return {tuple(r) for r in conn.execute(sa.text(sql), params)}


def windows(rng: random.Random) -> list[tuple[datetime, datetime]]:
    """Windows over the histories (30 days before NOW): everything; whole UTC days; days
    with partial first and last days (edges on hours, inside hours); shorter than a day,
    across a midnight; inside one hour; and across 8 March 2026 (New York's change to
    daylight saving), whose UTC days are still 24 hours."""
    midnight = NOW.replace(hour=0)
    found = [(NOW - timedelta(days=40), NOW + timedelta(days=1)),
             (midnight - timedelta(days=9), midnight - timedelta(days=2)),
             (datetime(2026, 3, 7, 5, 0, tzinfo=timezone.utc), datetime(2026, 3, 9, 4, 0, tzinfo=timezone.utc)),
             (datetime(2026, 3, 7, 23, 30, tzinfo=timezone.utc), datetime(2026, 3, 8, 0, 45, tzinfo=timezone.utc)),
             (NOW - timedelta(minutes=50), NOW - timedelta(minutes=10))]
    for _ in range(4):
        start = NOW - timedelta(minutes=rng.randrange(0, 20 * 24 * 60))
        if rng.random() < 0.3:
            start = start.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(minutes=rng.randrange(1, 10 * 24 * 60))
        if rng.random() < 0.3:
            end = end.replace(hour=0, minute=0, second=0, microsecond=0)
        found.append((start, end))
    return found


def assert_rollups_match(conn, rng: random.Random) -> None:
    for start, end in windows(rng):
        window = {"start": start, "end": end}
        assert rows(conn, WINDOWED, **window) == rows(conn, RAW, grain="day", **window), window
        assert rows(conn, WINDOWED_HOURLY, **window) == rows(conn, RAW, grain="hour", **window), window
        assert rows(conn, WINDOWED_DURATIONS, **window) == rows(conn, RAW_DURATIONS, **window), window
        # The example is the least message each level saw in the window, also of events that
        # changed since (queries/errors.sql): the whole days and the hours give the same one.
        assert rows(conn, EXAMPLES.format(function="webhook_window_counts"), **window) == rows(
            conn, EXAMPLES.format(function="webhook_window_counts_hourly"), **window), window
    # And the rollup tables themselves, hour by hour and day by day, over everything, once
    # the pending changes are folded: the daily level holds its hours' counts and examples.
    conn.execute(sa.text("SELECT webhook_rollup_fold()"))
    assert conn.execute(sa.text("SELECT count(*) FROM webhook_event_rollup_delta")).scalar() == 0
    whole = conn.execute(sa.text("""
        SELECT bucket, event_type, processing_status, error_category, error_fingerprint, events, retried
        FROM webhook_event_rollup WHERE events <> 0 OR retried <> 0""")).all()
    everything = {"start": NOW - timedelta(days=400), "end": NOW + timedelta(days=400)}
    assert {tuple(r) for r in whole} == rows(conn, RAW, grain="hour", **everything)
    assert rows(conn, DAILY) == rows(conn, HOURLY_BY_DAY)
    assert rows(conn, """SELECT day, processing_status, bin, events FROM webhook_event_duration_rollup_daily
                         WHERE events <> 0""") == rows(conn, """
        SELECT date_trunc('day', bucket, 'UTC'), processing_status, bin, sum(events)
        FROM webhook_event_duration_rollup GROUP BY 1, 2, 3 HAVING sum(events) <> 0""")


def random_history(engine, rng: random.Random, *, events: int) -> None:
    ids = []
    with engine.begin() as conn:
        for _ in range(events):  # rows written directly, as an app or an import might
            status = rng.choice(STATUSES)
            message = rng.choice(MESSAGES) if status == "failed" or rng.random() < 0.1 else None
            ids.append(add_event(
                conn, created_at=NOW - timedelta(seconds=rng.randrange(0, 30 * 86400)), status=status,
                event_type=rng.choice(TYPES), attempts=rng.choice([1, 1, 2, 3]),
                duration_ms=rng.choice([None, rng.randrange(0, 5000)]),
                error=message and message.format(n=rng.randrange(10**6)),
                error_category=rng.choice(CATEGORIES) if message else None))
        # A multi-row insert in one statement.
        conn.execute(sa.text("""
            INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
                                        created_at, processing_duration_ms)
            SELECT 'evt_bulk_' || n, 'charge.succeeded', 'completed', '{}', 1,
                   CAST(:now AS timestamptz) - n * interval '17 minutes', n * 7
            FROM generate_series(1, 200) AS n"""), {"now": NOW})
    with engine.begin() as conn:
        # Deliveries through the tracking functions: begin, then fail or complete; then
        # retries of the failed ones (attempt 2), some of which fail again.
        for i in range(30):
            event_id = f"evt_live_{i}"
            conn.execute(sa.text("SELECT * FROM webhook_event_begin(:id, 'charge.succeeded', '{}')"), {"id": event_id})
            if i % 3 == 0:
                conn.execute(sa.text("SELECT webhook_event_fail(:id, :msg, NULL, 'network')"),
                             {"id": event_id, "msg": f"connection reset after {i} ms"})
            else:
                conn.execute(sa.text("SELECT webhook_event_complete(:id)"), {"id": event_id})
        for i in range(0, 30, 3):
            conn.execute(sa.text("SELECT * FROM webhook_event_begin(:id, 'charge.succeeded', '{}')"),
                         {"id": f"evt_live_{i}"})
            if i % 2:
                conn.execute(sa.text("SELECT webhook_event_complete(:id)"), {"id": f"evt_live_{i}"})
    with engine.begin() as conn:
        # Reclaims: a worker went silent, the next delivery takes the event over.
        for event_id in rng.sample(ids, 10):
            conn.execute(sa.text("""UPDATE webhook_events SET processing_status = 'processing',
                                    processing_started_at = created_at WHERE stripe_event_id = :id"""),
                         {"id": event_id})
            conn.execute(sa.text("SELECT * FROM webhook_event_begin(:id, 'charge.succeeded', '{}', NULL, false, "
                                 "interval '1 second')"), {"id": event_id})
        # Late updates: status, attempts, message, duration and even created_at change.
        for event_id in rng.sample(ids, events // 4):
            conn.execute(sa.text("""
                UPDATE webhook_events
                SET processing_status = :status, attempts = attempts + 1, error_message = :msg,
                    error_category = :category, processing_duration_ms = :duration,
                    created_at = created_at - make_interval(mins => :shift)
                WHERE stripe_event_id = :id"""),
                {"id": event_id, "status": rng.choice(STATUSES), "msg": rng.choice(["deadlock detected on row 7", None]),
                 "category": rng.choice(CATEGORIES), "duration": rng.choice([None, rng.randrange(1, 90_000)]),
                 "shift": rng.choice([0, 0, 59, 600])})
        # An update that touches no rolled-up column.
        conn.execute(sa.text("UPDATE webhook_events SET retry_claimed_until = now() WHERE processing_status = 'failed'"))
        # Deletes (a person tidying up by hand).
        conn.execute(sa.text("DELETE FROM webhook_events WHERE stripe_event_id = ANY(:ids)"),
                     {"ids": rng.sample(ids, 10)})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollups_equal_raw_counts_after_a_random_history(db, seed):
    rng = random.Random(seed)
    random_history(db, rng, events=300)
    with db.connect() as conn:
        assert_rollups_match(conn, rng)
    # Archival: cleanup moves old completed events to the archive; they leave the rollups as
    # they leave webhook_events (the dashboard never counted archived events).
    report = cleanup.run(db, now=NOW + timedelta(days=15), skip_registrations=True, trigger="cli", events_days=30)
    assert report.events_archived > 0
    with db.connect() as conn:
        assert_rollups_match(conn, rng)


def test_an_hour_whose_events_all_changed_keeps_its_example_at_both_levels(db):
    """A failure that recovers leaves its hour's failed row at zero events: the daily level
    still counts its message among the day's, and so must a window read hour by hour (the
    daily and the hourly reading once disagreed on which example a fingerprint shows)."""
    day = NOW.replace(hour=0) - timedelta(days=3)
    with db.begin() as conn:
        first = add_event(conn, created_at=day + timedelta(hours=2), status="failed",
                          error="timeout after 100 ms for evt_1Nx1abcdef", error_category="network")
        add_event(conn, created_at=day + timedelta(hours=5), status="failed",
                  error="timeout after 200 ms for evt_1Nx2abcdef", error_category="network")
        conn.execute(sa.text("SELECT webhook_rollup_fold()"))
        conn.execute(sa.text("UPDATE webhook_events SET processing_status = 'completed', error_message = NULL "
                             "WHERE stripe_event_id = :id"),
                     {"id": first})
        conn.execute(sa.text("SELECT webhook_rollup_fold()"))
    window = {"start": day - timedelta(days=1), "end": day + timedelta(days=2)}
    with db.connect() as conn:
        for function in ("webhook_window_counts", "webhook_window_counts_hourly"):
            assert rows(conn, EXAMPLES.format(function=function), **window) == {
                (conn.execute(sa.text("SELECT error_fingerprint('timeout after 1 ms for evt_1Nx1abcdef')")).scalar(),
                 "timeout after 100 ms for evt_1Nx1abcdef")}, function


def test_truncate_empties_the_rollups(db):
    with db.begin() as conn:
        add_event(conn, created_at=NOW, duration_ms=5)
        conn.execute(sa.text("TRUNCATE webhook_events"))
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_event_rollup")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_event_duration_rollup")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_event_rollup_daily")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_event_duration_rollup_daily")).scalar() == 0


def test_kpis_equal_raw_counts_on_an_unaligned_window(dashboard_engine, db):
    rng = random.Random(7)
    random_history(db, rng, events=200)
    start, end = NOW - timedelta(days=6, minutes=17), NOW - timedelta(minutes=3)
    kpis = fetch_one(dashboard_engine, "event_kpis", start=start, end=end, stuck_before=NOW)
    with db.connect() as conn:
        raw = conn.execute(sa.text("""
            SELECT count(*) AS events_received,
                   count(*) FILTER (WHERE processing_status = 'completed') AS completed,
                   count(*) FILTER (WHERE processing_status = 'failed') AS failed
            FROM webhook_events WHERE created_at >= :start AND created_at < :end"""),
            {"start": start, "end": end}).mappings().one()
    assert {k: kpis[k] for k in raw} == dict(raw)


def test_p95_from_the_histogram_is_within_its_documented_error(dashboard_engine, db):
    # More completed events than the exact path takes (20,000): the p95 comes from the
    # histogram, within 2.5 % of percentile_cont over the rows.
    with db.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO webhook_events (stripe_event_id, event_type, processing_status, payload, attempts,
                                        created_at, processing_duration_ms)
            SELECT 'evt_p95_' || n, 'charge.succeeded', 'completed', '{}', 1,
                   CAST(:now AS timestamptz) - n * interval '7 seconds',
                   -- long-tailed: most a few hundred ms, some tens of seconds
                   (exp(4 + 3 * ((hashint4(n) & 65535) / 65536.0) ^ 2))::integer
            FROM generate_series(1, 25000) AS n"""), {"now": NOW})
        exact = conn.execute(sa.text("""
            SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY processing_duration_ms) FROM webhook_events
            WHERE created_at >= :start AND created_at < :end"""),
            {"start": NOW - timedelta(days=3), "end": NOW}).scalar()
    kpis = fetch_one(dashboard_engine, "event_kpis", start=NOW - timedelta(days=3), end=NOW, stuck_before=NOW)
    assert kpis["completed"] == 25000
    assert kpis["p95_duration_ms"] == pytest.approx(exact, rel=0.025)
    assert kpis["p95_duration_ms"] != exact  # the histogram path, not the exact one


PARTITIONED_LAYOUT = [
    "ALTER TABLE webhook_events RENAME TO webhook_events_flat",
    # What pg_partman (or a person) builds: monthly range partitions on created_at. The
    # primary key and the uniqueness of the event id must include the partition key.
    """CREATE TABLE webhook_events (LIKE webhook_events_flat INCLUDING DEFAULTS INCLUDING GENERATED
           INCLUDING CONSTRAINTS, PRIMARY KEY (id, created_at), UNIQUE (stripe_event_id, created_at))
       PARTITION BY RANGE (created_at)""",
    "CREATE TABLE webhook_events_2026_01 PARTITION OF webhook_events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')",
    "CREATE TABLE webhook_events_2026_02 PARTITION OF webhook_events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')",
    "CREATE TABLE webhook_events_2026_03 PARTITION OF webhook_events FOR VALUES FROM ('2026-03-01') TO ('2026-04-01')",
    """CREATE INDEX ON webhook_events (created_at)
           INCLUDE (processing_status, event_type, processing_duration_ms, processing_started_at)""",
    "CREATE INDEX ON webhook_events (error_fingerprint, created_at) WHERE error_fingerprint IS NOT NULL",
    """CREATE TRIGGER webhook_events_rollup AFTER INSERT OR UPDATE OR DELETE ON webhook_events
           FOR EACH ROW EXECUTE FUNCTION webhook_rollup_maintain()""",
    """CREATE TRIGGER webhook_events_rollup_fold AFTER INSERT OR UPDATE OR DELETE ON webhook_events
           FOR EACH STATEMENT EXECUTE FUNCTION webhook_rollup_fold_sometimes()""",
    """CREATE TRIGGER webhook_events_rollup_truncate AFTER TRUNCATE ON webhook_events
           FOR EACH STATEMENT EXECUTE FUNCTION webhook_rollup_maintain()""",
]


def test_partitioned_webhook_events_keep_rollups_and_queries_exact(db):
    """The layout the README documents for monthly range partitions: the rollup triggers on
    the partitioned table (rows moving between partitions included) and the dashboard's
    queries give the numbers a count over the rows gives. Built and thrown away in one
    transaction, so the shared test database keeps its plain table."""
    from queries import fetch_df

    rng = random.Random(11)
    conn = db.connect()
    tx = conn.begin()
    try:
        for statement in PARTITIONED_LAYOUT:
            conn.execute(sa.text(statement))
        ids = []
        for _ in range(300):
            message = rng.choice(MESSAGES)
            ids.append(add_event(
                conn, created_at=NOW - timedelta(seconds=rng.randrange(0, 40 * 86400)),
                status=rng.choice(STATUSES), event_type=rng.choice(TYPES), attempts=rng.choice([1, 2]),
                duration_ms=rng.randrange(1, 4000), error=message and message.format(n=rng.randrange(999)),
                error_category=rng.choice(CATEGORIES[1:]) if message else None))
        # Late updates, some moving rows into another month's partition.
        conn.execute(sa.text("""
            UPDATE webhook_events SET created_at = created_at - interval '9 days', attempts = attempts + 1,
                                      processing_status = 'failed', error_message = 'deadlock detected on row 5'
            WHERE stripe_event_id = ANY(:ids)"""), {"ids": rng.sample(ids, 60)})
        conn.execute(sa.text("DELETE FROM webhook_events WHERE stripe_event_id = ANY(:ids)"), {"ids": rng.sample(ids, 20)})
        assert conn.execute(sa.text("SELECT count(DISTINCT tableoid) FROM webhook_events")).scalar() == 3
        assert_rollups_match(conn, rng)

        start, end = NOW - timedelta(days=20, minutes=31), NOW - timedelta(minutes=5)
        window = {"start": start, "end": end}
        raw = conn.execute(sa.text("""
            SELECT count(*), count(*) FILTER (WHERE processing_status = 'failed'),
                   count(*) FILTER (WHERE processing_status = 'completed' AND attempts > 1)
            FROM webhook_events WHERE created_at >= :start AND created_at < :end"""), window).one()
        kpis = fetch_df(conn, "event_kpis", **window, stuck_before=NOW).iloc[0]
        assert (kpis["events_received"], kpis["failed"]) == (raw[0], raw[1])
        assert fetch_df(conn, "events_by_bucket", **window, bucket="day")[
            ["completed", "failed", "processing", "pending"]].to_numpy().sum() == raw[0]
        assert fetch_df(conn, "events_count", **window, statuses=[], event_types=[], search=None)["events"][0] == raw[0]
        assert fetch_df(conn, "failure_outcomes", **window)["recovered"].sum() == raw[2]
        fingerprints = fetch_df(conn, "error_fingerprints", **window, limit=50)
        assert fingerprints["events"].sum() == conn.execute(sa.text(
            "SELECT count(*) FROM webhook_events WHERE created_at >= :start AND created_at < :end "
            "AND error_message <> ''"), window).scalar()
        conn.execute(sa.text("TRUNCATE webhook_events"))
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_window_counts(:start, :end)"), window).scalar() == 0
    finally:
        tx.rollback()
        conn.close()


def test_demo_data_loads_rollups_equal_to_its_rows(db):
    """demo-data loads with the rollup trigger paused and rebuilds the rollups after; the
    trigger is back on for the next writer, and the dropped indexes are back."""
    from jobs.admin import demo_data

    with db.connect() as conn:
        indexes_before = set(conn.execute(sa.text(
            "SELECT indexdef FROM pg_indexes WHERE tablename IN ('webhook_events', 'registrations')")).scalars())
    demo_data.run(db, now=NOW, days=3, events_per_day=300, trigger="cli")
    with db.begin() as conn:
        assert_rollups_match(conn, random.Random(5))
        assert set(conn.execute(sa.text(
            "SELECT indexdef FROM pg_indexes WHERE tablename IN ('webhook_events', 'registrations')")).scalars()) \
            == indexes_before
        add_event(conn, created_at=NOW - timedelta(minutes=1), status="failed", error="late")
        assert_rollups_match(conn, random.Random(6))


def test_dashboard_counts_over_whole_and_partial_days_equal_raw_counts(db):
    """The Overview's charts and tables, the Errors page's failures per bucket, the sidebar
    verdict's failure rate and the silence rule's baseline, on windows of whole UTC days,
    partial days and partial hours, with some changes still pending: counts over the rows."""
    from core.sql import load_package
    from queries import fetch_df

    verdict_sql = load_package("jobs.health", "verdict.sql")
    rule_sql = load_package("jobs.alerting", "rules.sql")
    rng = random.Random(21)
    random_history(db, rng, events=300)
    with db.connect() as conn:
        for start, end in windows(rng):
            window = {"start": start, "end": end}
            raw = conn.execute(sa.text("""
                SELECT date_trunc(:grain, created_at, 'UTC') AS bucket, event_type, processing_status, count(*) AS n
                FROM webhook_events WHERE created_at >= :start AND created_at < :end
                GROUP BY 1, 2, 3"""), {**window, "grain": "hour"}).all()
            for grain in ("hour", "day"):
                per_bucket: dict = {}
                failed: dict = {}
                for hour, event_type, status, n in raw:
                    hour = hour.astimezone(timezone.utc)  # the session's zone may not be UTC
                    bucket = hour.replace(hour=0) if grain == "day" else hour
                    per_bucket.setdefault(bucket, {}).setdefault(status, 0)
                    per_bucket[bucket][status] += n
                    if status == "failed":
                        failed[(bucket, event_type)] = failed.get((bucket, event_type), 0) + n
                chart = fetch_df(conn, "events_by_bucket", **window, bucket=grain)
                got = {row.bucket: {s: getattr(row, s) for s in STATUSES if getattr(row, s)}
                       for row in chart.itertuples()}
                assert {b: c for b, c in got.items() if c} == per_bucket, (window, grain)
                errors = fetch_df(conn, "failures_by_bucket_and_type", **window, bucket=grain)
                assert {(r.bucket, r.event_type): r.failed for r in errors.itertuples()} == failed, (window, grain)
            types = fetch_df(conn, "event_types", **window)
            by_type: dict = {}
            for _, event_type, status, n in raw:
                counts = by_type.setdefault(event_type, [0, 0, 0])
                counts[0] += n
                counts[1] += n if status == "failed" else 0
                counts[2] += n if status == "completed" else 0
            assert {r.event_type: [r.events, r.failed, r.completed] for r in types.itertuples()} == by_type, window
            kpis = fetch_df(conn, "event_kpis", **window, stuck_before=NOW).iloc[0]
            assert kpis["events_received"] == sum(n for *_, n in raw)
            assert kpis["failed"] == sum(n for _, _, status, n in raw if status == "failed")

            rate = verdict_sql.one(conn, "failure_rate_against_usual", now=end, recent_since=start + (end - start) / 2,
                                   usual_since=start)
            raw_rate = conn.execute(sa.text("""
                SELECT count(*) FILTER (WHERE created_at >= :middle),
                       count(*) FILTER (WHERE created_at >= :middle AND processing_status = 'failed'),
                       count(*) FILTER (WHERE created_at < :middle),
                       count(*) FILTER (WHERE created_at < :middle AND processing_status = 'failed')
                FROM webhook_events WHERE created_at >= :start AND created_at < :end"""),
                {**window, "middle": start + (end - start) / 2}).one()
            assert tuple(rate.values()) == tuple(raw_rate), window

            silence = rule_sql.one(conn, "silence", until=end, baseline_hours=60, weeks=4)
            raw_baseline = conn.execute(sa.text("""
                SELECT count(*) FROM webhook_events, (SELECT max(created_at) AS last FROM webhook_events
                                                      WHERE created_at < :until) l
                WHERE created_at > l.last - interval '60 hours' AND created_at <= l.last"""),
                {"until": end}).scalar()
            assert silence["baseline_events"] == raw_baseline, window


def test_whole_days_are_utc_days_whatever_the_sessions_time_zone(db):
    """Every session in a zone with daylight saving: the random histories (30 days before
    10 March 2026, across New York's change on 8 March) and their windows still read whole
    UTC days of 24 hours from the daily level and match the rows."""
    new_york = sa.create_engine(db.url, connect_args={"options": "-c timezone=America/New_York"})
    try:
        with new_york.connect() as conn:
            assert conn.execute(sa.text("SHOW TimeZone")).scalar() == "America/New_York"
        test_rollups_equal_raw_counts_after_a_random_history(new_york, 2)
        empty_tables(db)
        test_dashboard_counts_over_whole_and_partial_days_equal_raw_counts(new_york)
    finally:
        new_york.dispose()


def test_window_bounds_round_as_date_trunc_in_utc_and_are_computed_once_per_query(db):
    """The immutable UTC rounding the window functions' bounds use gives date_trunc(unit, t,
    'UTC') for moments around New York's daylight-saving changes, in a New York session; and
    the planner computes a window's bounds from the query's parameters, so no scan filters or
    probes its rows with a rounding of its own (a 30-day window's daily rollups evaluated
    them for every row)."""
    new_york = sa.create_engine(db.url, connect_args={"options": "-c timezone=America/New_York"})
    moments = [datetime(2026, 3, 8, 6, 59, 59, 999999, tzinfo=timezone.utc) + timedelta(minutes=37 * i)
               for i in range(-40, 40)] + [datetime(2026, 11, 1, 5, 0, tzinfo=timezone.utc),
                                           datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc)]
    try:
        with new_york.connect() as conn:
            for moment in moments:
                ours = conn.execute(sa.text(
                    "SELECT webhook_utc_hour(:t), webhook_utc_day(:t), webhook_rollup_full_from(:t), "
                    "webhook_rollup_day_from(:t)"), {"t": moment}).one()
                reference = conn.execute(sa.text(
                    "SELECT date_trunc('hour', CAST(:t AS timestamptz), 'UTC'), "
                    "date_trunc('day', CAST(:t AS timestamptz), 'UTC')"), {"t": moment}).one()
                hour, day = (value.astimezone(timezone.utc) for value in reference)
                full_from = moment if hour == moment else hour + timedelta(hours=1)
                day_from = moment if day == moment else day + timedelta(hours=24)
                assert tuple(v.astimezone(timezone.utc) for v in ours) == (hour, day, full_from, day_from), moment
            for function in ("webhook_window_counts", "webhook_window_counts_hourly", "webhook_error_event_window",
                             "webhook_duration_window", "registration_funnel_counts",
                             "registration_completion_window", "registration_payment_window"):
                plan = conn.execute(sa.text(
                    f"EXPLAIN (VERBOSE) SELECT * FROM {function}(CAST(:start AS timestamptz), "
                    "CAST(:end AS timestamptz))"),
                    {"start": datetime(2026, 2, 3, 4, 5, tzinfo=timezone.utc),
                     "end": datetime(2026, 3, 9, 10, 11, tzinfo=timezone.utc)}).scalars().all()
                conditions = [line for line in plan if "Filter:" in line or "Cond:" in line]
                roundings = [line for line in conditions
                             if any(word in line for word in ("date_trunc", "webhook_utc", "webhook_rollup"))]
                assert conditions and not roundings, (function, plan)
    finally:
        new_york.dispose()


def test_the_event_rollups_are_empty_on_an_empty_database(dashboard_engine):
    from queries import fetch_df

    window = {"start": NOW - timedelta(days=30, minutes=7), "end": NOW}
    with dashboard_engine.connect() as conn:
        for function in ("webhook_window_counts", "webhook_window_counts_hourly", "webhook_duration_window"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {function}(:start, :end)"), window).scalar() == 0
    kpis = fetch_one(dashboard_engine, "event_kpis", **window, stuck_before=NOW)
    assert (kpis["events_received"], kpis["failed"], kpis["success_rate"], kpis["p95_duration_ms"]) == (0, 0, None, None)
    for grain, buckets in (("day", 31), ("hour", 30 * 24 + 1)):
        chart = fetch_df(dashboard_engine, "events_by_bucket", **window, bucket=grain)
        assert len(chart) == buckets and chart[["completed", "failed", "processing", "pending"]].to_numpy().sum() == 0
    assert fetch_df(dashboard_engine, "event_types", **window).empty
