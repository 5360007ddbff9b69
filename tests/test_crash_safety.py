"""Crash safety against real processes (devharness/faults.py; bench/faults.py runs the same
scenarios at full size and prints the table in docs/reliability.md)."""

from __future__ import annotations

from devharness.faults import receiver_killed_mid_burst


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
