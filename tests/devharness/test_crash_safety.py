"""Crash safety against real processes (devharness/scenarios/; bench/fault_recovery.py runs the same
scenarios at full size and prints the table in docs/reliability.md)."""

from __future__ import annotations

import pytest

from devharness import ThrowawayDatabase, patched_env
from devharness.scenarios.alert_channels_down import (
    alert_webhook_down_during_incident,
    slack_and_email_down_during_incident,
)
from devharness.scenarios.concurrent_jobs import two_retries
from devharness.scenarios.job_crash import job_killed_mid_run
from devharness.scenarios.postgres_restarts import (
    postgres_restarted_between_deliveries,
    postgres_restarted_during_cleanup,
    postgres_restarted_during_reconcile,
    postgres_restarted_during_retry,
    postgres_restarted_during_sweep,
    postgres_restarted_under_receiver,
    postgres_restarted_under_watch,
)
from devharness.scenarios.receiver_crash import receiver_killed_mid_burst
from devharness.scenarios.stripe_outages import stripe_failing_during_reconcile, stripe_failing_during_sweep


def test_a_receiver_killed_mid_burst_loses_nothing_and_recovers_at_the_next_delivery(database_url, db):
    # Five minutes is the hung-worker limit (MONITOR_RECLAIM_MINUTES' default): recovering in
    # seconds proves the dead workers' events were taken over because they died, not by time.
    result = receiver_killed_mid_burst(database_url, events=60, workers=2, held=3, deadline_s=30,
                                       extra_env={"MONITOR_RECLAIM_MINUTES": "5"})
    assert result.detail["processing_at_kill"] >= 3  # the kill left attempts mid-way
    assert (result.lost, result.duplicated, result.stuck) == (0, 0, 0), result
    assert result.after == result.before == 60
    assert result.detail["registrations_completed"] == 60
    assert result.recover_s is not None and result.recover_s < 30, result
    assert result.detail["leaked_locks"] == 0


@pytest.fixture
def private_embedded_database():
    """A migrated database on an embedded PostgreSQL of its own, which a test may restart
    without disturbing the session's server."""
    with patched_env({"DATABASE_URL": None}):
        database = ThrowawayDatabase(prefix="crash_safety").__enter__()
    try:
        yield database
    finally:
        database.close()


def test_postgres_restarted_under_cleanup_fails_the_run_clearly_and_the_next_run_finishes(private_embedded_database):
    database = private_embedded_database
    result = postgres_restarted_during_cleanup(database.url, database.data_dir, events=5000, batch_size=100)
    assert result.detail["archived_at_restart"] < 5000  # the restart came mid-run
    assert result.detail["first_exit"] == 1, result.detail
    # Recorded failed with its reason, although the database was down when the run ended
    # (a statement cut off, or, between statements, the run's session found gone).
    assert result.detail["first_run"].startswith(("failed: OperationalError", "failed: DatabaseLost")), result.detail
    assert result.detail["lock_free_after"] is True
    assert result.detail["second_exit"] == 0
    assert (result.lost, result.duplicated, result.stuck, result.after) == (0, 0, 0, 5000), result


def test_postgres_restarted_under_the_receiver_loses_no_delivery(private_embedded_database):
    database = private_embedded_database
    result = postgres_restarted_under_receiver(database.url, database.data_dir, events=120, restart_at=0.3,
                                               down_s=1.0, deadline_s=30)
    assert set(result.detail["answers_during_burst"]) - {200}, result.detail  # the outage was felt
    assert (result.lost, result.duplicated, result.stuck, result.after) == (0, 0, 0, 120), result
    assert result.detail["registrations_completed"] == 120
    assert result.recover_s is not None and result.recover_s < 30
    assert result.detail["leaked_locks"] == 0


def test_right_after_postgres_restarted_under_an_idle_receiver_every_delivery_succeeds_first_time(
        private_embedded_database):
    # The receiver's pool is not pre-pinged: the claims meet the connections the restart
    # closed and are made again on new ones, so nothing is answered 503 or 500.
    database = private_embedded_database
    result = postgres_restarted_between_deliveries(database.url, database.data_dir, before=12, after=12,
                                                   concurrency=4, down_s=1.0)
    assert result.detail["answers_before"] == {200: 12}
    assert result.detail["first_answers_after"] == {200: 12}, result.detail
    assert result.detail["redelivered"] == 0
    assert (result.lost, result.duplicated, result.stuck, result.after) == (0, 0, 0, 24), result
    assert result.detail["leaked_locks"] == 0


def test_postgres_restarted_under_retry_fails_the_run_leaves_no_claim_behind_and_the_next_run_finishes(
        private_embedded_database):
    # The outage outlasts the deliveries in flight, so the run gives back its claims while
    # PostgreSQL is down: unreleased, they would hide these events from every run for the
    # claims' 10-minute lease. Its own session died: it stops and says so (exit 1).
    database = private_embedded_database
    result = postgres_restarted_during_retry(database.url, database.data_dir, events=200, restart_after=20,
                                             down_s=4.0)
    assert result.detail["completed_at_restart"] < 200  # the restart came mid-run
    assert result.detail["first_exit"] == 1, result.detail
    assert result.detail["first_run"].startswith("failed: DatabaseLost: the run lost its database connection"), \
        result.detail
    assert result.detail["second_exit"] == 0
    assert (result.lost, result.duplicated, result.stuck, result.after) == (0, 0, 0, 200), result
    assert result.detail["registrations_completed"] == 200


def test_stripe_failing_longer_than_the_retries_fails_the_sweep_and_the_next_run_finds_everything(database_url, db):
    result = stripe_failing_during_sweep(database_url, status=500, failures=20, events=30, recorded=5)
    assert result.detail["first_exit"] == 1, result.detail
    # bounded: the first request and the library's 3 retries, then it gives up
    assert result.detail["requests_during_outage"] == 4, result.detail
    assert result.detail["first_run"].startswith("failed: StripeUnavailable: Stripe answered 500"), result.detail
    assert result.detail["recorded_by_first"] == 0  # nothing half-found by a failed run
    assert result.detail["lock_free_after"] is True
    assert result.detail["second_exit"] == 3 and result.detail["second_run"] == "needs_review"
    assert (result.before, result.after, result.lost, result.duplicated) == (25, 25, 0, 0), result


def test_a_short_stripe_rate_limit_is_waited_out_by_the_same_sweep(database_url, db):
    result = stripe_failing_during_sweep(database_url, status=429, failures=2, events=30, recorded=5)
    assert result.detail["first_exit"] == 3, result.detail  # found the missed events despite the 429s
    assert result.detail["requests_during_outage"] == 4  # two 429s, then one page for each of the two passes
    assert result.detail["recorded_by_first"] == 25
    assert (result.before, result.after, result.lost, result.duplicated) == (25, 25, 0, 0), result


def test_stripe_failing_mid_reconcile_fails_the_run_keeps_its_fixes_and_the_next_run_fixes_the_rest(database_url, db):
    result = stripe_failing_during_reconcile(database_url, status=500, failures=20, registrations=30, fail_after=10)
    assert result.detail["outage_started"] is True
    assert result.detail["first_exit"] == 1, result.detail
    assert result.detail["first_run"].startswith("failed: StripeUnavailable: Stripe answered 500"), result.detail
    assert 0 < result.detail["fixed_by_first"] < 30  # the outage came mid-run; its fixes stay
    assert result.detail["failures_left"] > 0  # the retries gave up before Stripe came back: bounded
    assert result.detail["lock_free_after"] is True
    assert (result.detail["second_exit"], result.detail["second_run"]) == (0, "completed")
    assert (result.before, result.after, result.lost, result.duplicated) == (30, 30, 0, 0), result


def test_an_alert_channel_down_during_an_incident_gets_every_notification_once_when_it_is_back(database_url, db):
    # Two watch processes, as on two machines: each notification still goes out once.
    result = alert_webhook_down_during_incident(database_url, alerts=3, watchers=2, down_s=2.0, deadline_s=45)
    assert result.detail["tried_while_down"] is True
    # recorded while the channel was down, none of them marked sent
    assert sum(result.detail["while_down"].values()) == 3 and "firing/sent" not in result.detail["while_down"]
    assert (result.detail["firing_delivered"], result.detail["resolved_delivered"]) == (3, 3)
    assert (result.lost, result.duplicated, result.stuck) == (0, 0, 0), result
    assert result.recover_s is not None and result.recover_s < 45
    assert result.detail["watch_exits"] == [0, 0]


def test_postgres_restarted_under_watch_reconnects_and_notifies_what_failed_meanwhile(private_embedded_database):
    database = private_embedded_database
    result = postgres_restarted_under_watch(database.url, database.data_dir, down_s=2.0, alerts=3, deadline_s=45)
    assert result.detail["delivered_before_restart"] == 1
    assert result.detail["watch_alive_after"] is True, result.detail  # rode the restart out, no supervisor needed
    assert (result.before, result.after, result.lost, result.duplicated) == (4, 4, 0, 0), result
    assert result.recover_s is not None and result.recover_s < 45


def test_postgres_restarted_under_sweep_fails_the_run_clearly_and_the_next_run_records_everything_once(
        private_embedded_database):
    database = private_embedded_database
    result = postgres_restarted_during_sweep(database.url, database.data_dir, events=2500, recorded=100,
                                             restart_at_request=30, down_s=1.0)
    assert result.detail["restarted_mid_run"] is True
    assert result.detail["first_exit"] == 1, result.detail
    # it went on after the restart without its lock: stopped at its next progress report
    assert result.detail["first_run"].startswith("failed: DatabaseLost"), result.detail
    assert result.detail["first_sweep_run"] == "failed"
    assert result.detail["lock_free_after"] is True
    assert result.detail["second_exit"] == 3  # missed events found, awaiting replay
    assert (result.before, result.after, result.lost, result.duplicated, result.stuck) == (2400, 2400, 0, 0, 0), result


def test_postgres_restarted_under_reconcile_stops_the_run_keeps_its_fixes_and_the_next_run_fixes_the_rest(
        private_embedded_database):
    database = private_embedded_database
    result = postgres_restarted_during_reconcile(database.url, database.data_dir, registrations=40,
                                                 restart_after=15, down_s=1.0)
    assert result.detail["restarted_mid_run"] is True
    assert result.detail["first_exit"] == 1, result.detail
    assert result.detail["first_run"].startswith("failed: DatabaseLost"), result.detail
    assert result.detail["first_reconciliation_run"] == "failed"
    assert 0 < result.detail["fixed_by_first"] < 40  # stopped at the restart, its fixes kept
    assert result.detail["lock_free_after"] is True
    assert result.detail["second_exit"] == 0
    assert (result.before, result.after, result.lost, result.duplicated, result.stuck) == (40, 40, 0, 0, 0), result


def test_a_stripe_that_does_not_answer_fails_the_sweep_within_its_timeout_and_the_next_run_finds_everything(
        database_url, db):
    # Each held request would be answered after 30 s: the run gives up long before.
    result = stripe_failing_during_sweep(database_url, failures=4, events=30, recorded=5, hang_s=30, timeout_s=1)
    assert result.detail["first_exit"] == 1, result.detail
    assert result.detail["requests_during_outage"] == 4  # the first try and the library's 3 retries
    assert result.detail["first_run"].startswith("failed: StripeUnavailable: Stripe did not answer within 1 s"), \
        result.detail
    assert result.detail["first_s"] < 30  # it never waited for an answer
    assert result.detail["recorded_by_first"] == 0
    assert result.detail["lock_free_after"] is True
    assert result.detail["second_exit"] == 3
    assert (result.before, result.after, result.lost, result.duplicated) == (25, 25, 0, 0), result


def test_a_stripe_that_stops_answering_mid_reconcile_fails_the_run_and_the_next_run_fixes_the_rest(database_url, db):
    result = stripe_failing_during_reconcile(database_url, failures=4, registrations=30, fail_after=10, hang_s=30,
                                             timeout_s=1)
    assert result.detail["first_exit"] == 1, result.detail
    assert result.detail["first_run"].startswith("failed: StripeUnavailable: Stripe did not answer within 1 s"), \
        result.detail
    assert result.detail["first_s"] < 30
    assert 0 < result.detail["fixed_by_first"] < 30
    assert (result.detail["second_exit"], result.detail["second_run"]) == (0, "completed")
    assert (result.before, result.after, result.lost, result.duplicated) == (30, 30, 0, 0), result


def test_slack_and_the_mail_server_down_during_an_incident_get_every_notification_once_when_back(database_url, db):
    result = slack_and_email_down_during_incident(database_url, alerts=3, watchers=2, down_s=2.0, deadline_s=60)
    assert result.detail["tried_while_down"] is True
    # every alert recorded while both were down, none of its notifications marked sent
    assert not any(key.endswith("/sent") for key in result.detail["while_down"]), result.detail
    assert (result.detail["slack_delivered"], result.detail["email_delivered"]) == (6, 6), result.detail
    assert (result.before, result.after, result.lost, result.duplicated, result.stuck) == (12, 12, 0, 0, 0), result
    assert result.detail["watch_exits"] == [0, 0]


def test_two_retry_processes_at_once_re_deliver_each_event_once(database_url, db):
    result = two_retries(database_url, events=300)
    assert result.detail["exits"] == [0, 0], result.detail
    assert sum(result.detail["delivered_by_each"]) == 300, result.detail
    assert (result.lost, result.duplicated, result.stuck, result.after) == (0, 0, 0, 300), result
    assert result.detail["registrations_completed"] == 300


def test_a_sigkilled_watch_leaves_no_running_row_and_a_live_one_is_left_alone(database_url, db):
    result = job_killed_mid_run(database_url)
    assert result.detail["running_after_kill"] == 2  # the kill recorded nothing by itself
    assert result.detail["next_exit"] == 0
    assert result.detail["killed_run"].startswith("failed: abandoned: its process (pid "), result.detail
    assert result.detail["live_run"] == "running" and result.detail["live_alive"] is True
    assert result.detail["live_run_after_stop"] == "completed"
    assert (result.lost, result.stuck, result.after) == (0, 0, 2), result
