"""The registration rollups (migrations/functions/registration_rollups.sql) behind the
Funnel page and the report's payments stay equal to the computation over the rows through
random histories: registrations created, given a session later, completed, expired, failed,
edited, archived by cleanup and deleted; paid Checkout Session events recorded before and
after their registration, changed and archived; and the completion-time percentiles read
from the histogram stay within their documented error."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core import checkout
from queries import fetch_df, fetch_one
from tests.support.factories import add_event, add_registration
from tests.support.stale_registrations import NOW as CLEANUP_NOW
from tests.support.stale_registrations import run_cleanup

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
PAID_TYPES = ["checkout.session.completed", "checkout.session.async_payment_succeeded"]
CURRENCIES = ["eur", "EUR", "usd", "gbp", None]

# The queries as they were before the rollups: a computation over every row of the window.
RAW_FUNNEL = """
    SELECT date_trunc(:bucket, r.created_at, 'UTC') AS bucket,
           count(*) AS created,
           count(*) FILTER (WHERE r.stripe_checkout_session_id IS NOT NULL) AS checkout_started,
           count(*) FILTER (WHERE r.stripe_checkout_session_id IS NOT NULL
                              AND (r.processing_status = 'completed' OR EXISTS (
                                  SELECT 1 FROM webhook_events e
                                  WHERE e.event_type IN ('checkout.session.completed',
                                                         'checkout.session.async_payment_succeeded')
                                    AND e.payload -> 'data' -> 'object' ->> 'id' = r.stripe_checkout_session_id
                                    AND (e.event_type = 'checkout.session.async_payment_succeeded'
                                         OR e.payload -> 'data' -> 'object' ->> 'payment_status' = 'paid')))) AS paid,
           count(*) FILTER (WHERE r.stripe_checkout_session_id IS NOT NULL
                              AND r.processing_status = 'completed') AS completed
    FROM registrations r
    WHERE r.created_at >= :start AND r.created_at < :end
    GROUP BY 1 ORDER BY 1"""
RAW_TIMES = """
    SELECT count(*) AS completed,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at)) AS median_seconds,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at)) AS p95_seconds
    FROM registrations
    WHERE created_at >= :start AND created_at < :end
      AND processing_status = 'completed' AND completed_at IS NOT NULL"""
RAW_PAYMENTS = """
    SELECT lower(currency) AS currency, count(*) AS registrations, sum(amount_total) AS amount_total
    FROM registrations
    WHERE processing_status = 'completed' AND completed_at >= :start AND completed_at < :end
    GROUP BY 1 ORDER BY 1"""
RAW_HISTOGRAM = """
    SELECT registration_completion_bin(extract(epoch FROM completed_at - created_at)::double precision) AS bin,
           count(*) AS registrations
    FROM registrations
    WHERE created_at >= :start AND created_at < :end
      AND processing_status = 'completed' AND completed_at IS NOT NULL
    GROUP BY 1"""


def raw(conn, sql, **params) -> list[tuple]:
    return [tuple(row) for row in conn.execute(sa.text(sql), params)]


def windows(rng: random.Random) -> list[tuple[datetime, datetime]]:
    found = [(NOW - timedelta(days=60), NOW + timedelta(days=30))]
    for _ in range(4):  # edges inside hours and on hour boundaries
        start = NOW - timedelta(minutes=rng.randrange(0, 30 * 24 * 60))
        if rng.random() < 0.3:
            start = start.replace(minute=0, second=0, microsecond=0)
        found.append((start, start + timedelta(minutes=rng.randrange(1, 12 * 24 * 60))))
    return found


def assert_rollups_match(engine, rng: random.Random) -> None:
    with engine.connect() as conn:
        for start, end in windows(rng):
            for bucket in ("hour", "day"):
                funnel = fetch_df(conn, "funnel_by_bucket", start=start, end=end, bucket=bucket)
                assert [tuple(row) for row in funnel.itertuples(index=False)] == \
                    raw(conn, RAW_FUNNEL, start=start, end=end, bucket=bucket)
            times = fetch_one(conn, "completion_times", start=start, end=end)
            expected = conn.execute(sa.text(RAW_TIMES), {"start": start, "end": end}).mappings().one()
            assert times["completed"] == expected["completed"]
            for key in ("median_seconds", "p95_seconds"):  # exact while at most 20,000 completed
                assert times[key] == (None if expected[key] is None else pytest.approx(expected[key]))
            histogram = raw(conn, "SELECT bin, registrations FROM registration_completion_window(:start, :end)",
                            start=start, end=end)
            assert sorted(histogram) == sorted(raw(conn, RAW_HISTOGRAM, start=start, end=end))
            payments = fetch_df(conn, "completed_payments_by_currency", start=start, end=end)
            assert [tuple(None if value != value else value for value in row)  # NaN -> None
                    for row in payments.itertuples(index=False)] == \
                raw(conn, RAW_PAYMENTS, start=start, end=end)
    # The rollup tables themselves, once the pending changes are folded, over everything.
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT registration_rollup_fold()"))
        assert conn.execute(sa.text("SELECT count(*) FROM registration_rollup_delta")).scalar() == 0
        everything = {"start": NOW - timedelta(days=400), "end": NOW + timedelta(days=400)}
        folded = raw(conn, """SELECT date_trunc('day', bucket, 'UTC'), sum(registrations),
                                     sum(registrations) FILTER (WHERE has_session),
                                     sum(registrations) FILTER (WHERE paid),
                                     sum(registrations) FILTER (WHERE has_session AND completed)
                              FROM registration_funnel_rollup GROUP BY 1 HAVING sum(registrations) <> 0 ORDER BY 1""")
        assert [tuple(v or 0 for v in row) for row in folded] == raw(conn, RAW_FUNNEL, bucket="day", **everything)
        daily = raw(conn, "SELECT bucket, bin, registrations FROM registration_completion_daily WHERE registrations <> 0")
        assert sorted(daily) == sorted(raw(conn, """
            SELECT date_trunc('day', created_at, 'UTC'),
                   registration_completion_bin(extract(epoch FROM completed_at - created_at)::double precision), count(*)
            FROM registrations WHERE processing_status = 'completed' AND completed_at IS NOT NULL
            GROUP BY 1, 2"""))


def paid_event(conn, *, at: datetime, session_id: str, event_type: str = "checkout.session.completed",
               payment_status: str = "paid") -> str:
    return add_event(conn, created_at=at, event_type=event_type, status="completed",
                     payload={"type": event_type,
                              "data": {"object": {"id": session_id, "payment_status": payment_status}}})


def random_history(engine, rng: random.Random, *, registrations: int) -> None:
    ids, sessions, events = [], [], []
    with engine.begin() as conn:
        for i in range(registrations):
            created = NOW - timedelta(seconds=rng.randrange(0, 30 * 86400))
            status = rng.choice(["pending", "pending", "completed", "expired", "failed"])
            session_id = f"cs_test_{i}" if rng.random() < 0.8 else None
            completed_at = None
            if status == "completed" and rng.random() < 0.95:
                completed_at = created + timedelta(seconds=rng.choice([0.0004, 3, 40, 300, 5000, 90000]) * rng.random())
            ids.append(add_registration(conn, created_at=created, status=status, session_id=session_id,
                                        email=f"r{i}@example.com", currency=rng.choice(CURRENCIES),
                                        amount_total=rng.choice([None, 0, 1500, 2500, 99999]),
                                        completed_at=completed_at))
            if session_id:
                sessions.append(session_id)
        # Paid (and unpaid) events for some sessions, before and after their registration.
        for session_id in rng.sample(sessions, len(sessions) // 2):
            events.append(paid_event(conn, at=NOW - timedelta(seconds=rng.randrange(0, 30 * 86400)),
                                     session_id=session_id, event_type=rng.choice(PAID_TYPES),
                                     payment_status=rng.choice(["paid", "paid", "unpaid"])))
        # A paid event for a session no registration has yet, which one gets later.
        events.append(paid_event(conn, at=NOW - timedelta(hours=5), session_id="cs_test_later"))
    with engine.begin() as conn:
        pending = conn.execute(sa.text("SELECT id::text FROM registrations WHERE processing_status = 'pending'")).scalars().all()
        # Completed by the checkout domain's statement, as the receiver and reconciliation do.
        for rid in rng.sample(pending, len(pending) // 3):
            checkout.complete_registration(conn, registration_id=rid, session_id=f"cs_test_done_{rid[:8]}",
                                           amount_total=rng.choice([None, 4200]), currency=rng.choice(["eur", None]),
                                           completed_at=NOW - timedelta(minutes=rng.randrange(0, 40 * 24 * 60)))
        # The session id set later (checkout started), including the one already paid.
        no_session = conn.execute(sa.text(
            "SELECT id::text FROM registrations WHERE stripe_checkout_session_id IS NULL")).scalars().all()
        for n, rid in enumerate(rng.sample(no_session, min(5, len(no_session)))):
            conn.execute(sa.text("UPDATE registrations SET stripe_checkout_session_id = :sid WHERE id = :id"),
                         {"sid": "cs_test_later" if n == 0 else f"cs_test_set_{n}", "id": rid})
        # Late edits of every rolled-up column, and one of none.
        for rid in rng.sample(ids, len(ids) // 5):
            conn.execute(sa.text("""
                UPDATE registrations
                SET processing_status = :status, currency = :currency, amount_total = :amount,
                    created_at = created_at - make_interval(mins => :shift),
                    completed_at = CASE WHEN :status = 'completed' THEN coalesce(completed_at, created_at + interval '7 minutes') END
                WHERE id = :id"""),
                {"id": rid, "status": rng.choice(["pending", "completed", "expired"]),
                 "currency": rng.choice(CURRENCIES), "amount": rng.choice([None, 700]), "shift": rng.choice([0, 59, 600])})
        conn.execute(sa.text("UPDATE registrations SET email = upper(email)"))
    with engine.begin() as conn:
        # Events change: a paid event turned unpaid by a payload fix, one moved to another
        # session, status changes (the usual update), and archival/deletes of others.
        for event_id in rng.sample(events, min(6, len(events))):
            conn.execute(sa.text("""
                UPDATE webhook_events
                SET payload = jsonb_set(payload, '{data,object,payment_status}', to_jsonb(CAST(:ps AS text)))
                WHERE stripe_event_id = :id"""), {"id": event_id, "ps": rng.choice(["paid", "unpaid"])})
        moved = rng.choice(events)
        conn.execute(sa.text("""UPDATE webhook_events SET payload = jsonb_set(payload, '{data,object,id}', to_jsonb(CAST(:sid AS text)))
                                WHERE stripe_event_id = :id"""), {"id": moved, "sid": rng.choice(sessions)})
        conn.execute(sa.text("UPDATE webhook_events SET processing_status = 'failed', error_message = 'x' "
                             "WHERE stripe_event_id = ANY(:ids)"), {"ids": rng.sample(events, len(events) // 4)})
        conn.execute(sa.text("DELETE FROM webhook_events WHERE stripe_event_id = ANY(:ids)"),
                     {"ids": rng.sample(events, len(events) // 4)})
        # Registrations deleted (archived, or removed by hand).
        conn.execute(sa.text("DELETE FROM registrations WHERE id = ANY(CAST(:ids AS uuid[]))"),
                     {"ids": rng.sample(ids, len(ids) // 10)})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_registration_rollups_equal_the_raw_computation_after_a_random_history(db, seed):
    rng = random.Random(seed)
    random_history(db, rng, registrations=250)
    assert_rollups_match(db, rng)
    # The paid events leave webhook_events all at once: every registration left unpaid.
    with db.begin() as conn:
        conn.execute(sa.text("TRUNCATE webhook_events"))
    assert_rollups_match(db, rng)


def test_hand_built_funnel_counts_whole_hours_from_the_rollup_and_edges_from_the_rows(db):
    hour = NOW.replace(minute=0)
    with db.begin() as conn:
        add_registration(conn, created_at=hour - timedelta(minutes=50), session_id="cs_a")  # edge hour before
        add_registration(conn, created_at=hour + timedelta(minutes=10), session_id="cs_b")  # whole hour
        add_registration(conn, created_at=hour + timedelta(minutes=20), session_id="cs_c", status="completed",
                         completed_at=hour + timedelta(minutes=25))
        add_registration(conn, created_at=hour + timedelta(hours=1, minutes=5))                # edge hour after
        paid_event(conn, at=hour + timedelta(minutes=40), session_id="cs_b")
        paid_event(conn, at=hour - timedelta(minutes=45), session_id="cs_a",
                   event_type="checkout.session.async_payment_succeeded", payment_status="unpaid")
    window = {"start": hour - timedelta(minutes=55), "end": hour + timedelta(hours=1, minutes=30)}
    funnel = fetch_df(db, "funnel_by_bucket", **window, bucket="day")
    assert [tuple(row)[1:] for row in funnel.itertuples(index=False)] == [(4, 3, 3, 1)]
    with db.begin() as conn:
        conn.execute(sa.text("SELECT registration_rollup_fold()"))
    assert [tuple(row)[1:] for row in fetch_df(db, "funnel_by_bucket", **window, bucket="day").itertuples(index=False)] \
        == [(4, 3, 3, 1)]
    # cs_b's paid event archived: cs_b is no longer paid.
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM webhook_events WHERE payload -> 'data' -> 'object' ->> 'id' = 'cs_b'"))
    assert [tuple(row)[1:] for row in fetch_df(db, "funnel_by_bucket", **window, bucket="day").itertuples(index=False)] \
        == [(4, 3, 2, 1)]
    times = fetch_one(db, "completion_times", **window)
    assert times == {"completed": 1, "median_seconds": 300.0, "p95_seconds": 300.0}


def test_cleanup_archival_and_fixes_land_in_the_rollups(db, stripe_server, mixed):
    with db.begin() as conn:
        conn.execute(sa.text("SELECT registration_rollup_fold()"))
    report = run_cleanup(db, now=CLEANUP_NOW, trigger="cli")
    assert report.registrations_archived == 3 and report.registrations_fixed == 1
    window = {"start": CLEANUP_NOW - timedelta(days=30), "end": CLEANUP_NOW + timedelta(days=1)}
    with db.connect() as conn:
        funnel = fetch_df(conn, "funnel_by_bucket", **window, bucket="day")
        assert [tuple(row) for row in funnel.itertuples(index=False)] == raw(conn, RAW_FUNNEL, **window, bucket="day")
        assert int(funnel["created"].sum()) == 5  # 8 registrations, 3 archived
        assert int(funnel["completed"].sum()) == 1  # the paid one, fixed (the other completed has no session)
        payments = fetch_df(conn, "completed_payments_by_currency", **window)
        assert [tuple(row) for row in payments.itertuples(index=False)] == raw(conn, RAW_PAYMENTS, **window)


def test_percentiles_from_the_histogram_are_within_their_documented_error(db):
    # 25,000 completed registrations (past the 20,000 up to which the percentiles are exact),
    # long-tailed times from under a second to days.
    with db.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO registrations (email, processing_status, amount_total, currency, created_at, completed_at)
            SELECT 'p' || n || '@example.com', 'completed', 2500, 'eur', t.created,
                   t.created + make_interval(secs => 0.2 * exp(12 * ((n * 7919) % 25000) / 25000.0 * ((n * 104729) % 997) / 997.0))
            FROM generate_series(CAST(1 AS bigint), 25000) AS n,
                 LATERAL (SELECT CAST(:now AS timestamptz) - make_interval(secs => (n * 37) % (6 * 86400))) AS t (created)
            """), {"now": NOW})
    window = {"start": NOW - timedelta(days=7), "end": NOW}
    times = fetch_one(db, "completion_times", **window)
    with db.connect() as conn:
        exact = conn.execute(sa.text(RAW_TIMES), window).mappings().one()
    assert times["completed"] == exact["completed"] == 25000
    assert times["median_seconds"] == pytest.approx(exact["median_seconds"], rel=0.025)
    assert times["p95_seconds"] == pytest.approx(exact["p95_seconds"], rel=0.025)
    assert times["median_seconds"] != exact["median_seconds"]  # read from the histogram, not the rows


def test_queries_on_an_empty_database(dashboard_engine):
    window = {"start": NOW - timedelta(days=30), "end": NOW}
    assert fetch_df(dashboard_engine, "funnel_by_bucket", **window, bucket="day").empty
    assert fetch_df(dashboard_engine, "completed_payments_by_currency", **window).empty
    assert fetch_one(dashboard_engine, "completion_times", **window) == \
        {"completed": 0, "median_seconds": None, "p95_seconds": None}
