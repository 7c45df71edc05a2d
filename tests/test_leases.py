"""Leases: who holds a unit, when it counts as dead, and the heartbeat that keeps it live (fake clock and hosts)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from dlbench import leases
from dlbench.leases import Holder


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_foreign_holder_is_alive_until_its_heartbeat_is_older_than_the_threshold():
    clock = Clock()
    holder = Holder("other-host", 4242, "123", clock.now)
    # Judged by the heartbeat alone: the process table of this host says nothing about another host's pid.
    never = lambda pid, start: pytest.fail("the process table must not be asked about another host")  # noqa: E731
    clock.now += 599.9
    assert leases.alive(holder, host="this-host", clock=clock, stale=600, process=never)
    clock.now += 0.2
    assert not leases.alive(holder, host="this-host", clock=clock, stale=600, process=never)


def test_a_holder_on_this_host_is_judged_by_the_process_table_not_by_its_heartbeat():
    clock = Clock()
    ancient = Holder("this-host", 4242, "123", clock.now - 10_000)
    assert leases.alive(ancient, host="this-host", clock=clock, stale=600, process=lambda pid, start: True)
    fresh = Holder("this-host", 4242, "123", clock.now)
    assert not leases.alive(fresh, host="this-host", clock=clock, stale=600, process=lambda pid, start: False)


def test_the_process_table_check_knows_a_live_process_and_a_recycled_pid():
    me = leases.me()
    assert leases.process_alive(me.pid, me.pid_start)
    assert not leases.process_alive(me.pid, "not-its-start-time")
    assert not leases.process_alive(2**22 + 12345, "")  # beyond pid_max: no such process


def test_missing_unreadable_and_released_holders_are_dead():
    assert Holder.parse({}) is None
    assert Holder.parse({"host": "h", "pid": "x", "heartbeat": "1"}) is None
    assert not leases.alive(None)
    released = Holder.parse({**leases.me().fields(), **leases.RELEASED})
    assert released.released and not leases.alive(released)


def test_holder_fields_round_trip():
    h = Holder("node-7", 31337, "98765", 1234.5)
    assert Holder.parse(h.fields()) == h


def test_heartbeat_interval_is_a_sixth_of_the_threshold_within_bounds():
    assert leases.interval(600) == 60.0  # 600 / 6 = 100, capped at 60
    assert leases.interval(3) == 0.5
    assert leases.interval(0.1) == 0.2


def test_the_heartbeat_writes_the_holder_then_beats_until_the_unit_ends():
    writes: list[dict] = []
    clock = Clock()
    with leases.Heartbeat(writes.append, every=0.01, clock=clock):
        deadline = time.monotonic() + 5
        while len(writes) < 4 and time.monotonic() < deadline:
            clock.now += 1
            time.sleep(0.01)
    n = len(writes)
    time.sleep(0.05)
    assert len(writes) == n  # stopped with the unit
    assert set(writes[0]) == {"host", "pid", "pid_start", "heartbeat"} and writes[0]["pid"] == str(os.getpid())
    beats = [float(w["heartbeat"]) for w in writes[1:]]
    assert len(beats) >= 3 and beats == sorted(beats) and set(writes[1]) == {"heartbeat"}


def test_a_failed_heartbeat_write_is_retried_not_raised():
    calls = {"n": 0}
    done = threading.Event()

    def flaky(fields):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("database restarting")
        if calls["n"] >= 4:
            done.set()

    with leases.Heartbeat(flaky, every=0.01) as beat:
        assert done.wait(5)
    assert beat.failures == 1


def test_ctrl_c_releases_the_lease_so_the_next_run_takes_over_at_once():
    writes: list[dict] = []
    with pytest.raises(KeyboardInterrupt):
        with leases.Heartbeat(writes.append, every=60):
            raise KeyboardInterrupt
    assert writes[-1] == leases.RELEASED
    writes.clear()
    with pytest.raises(ValueError):
        with leases.Heartbeat(writes.append, every=60):
            raise ValueError("a crash ends the unit; nothing to release")
    assert leases.RELEASED not in writes


def test_stale_after_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DLBENCH_STALE_AFTER", "3")
    assert leases.stale_after() == 3.0
    monkeypatch.delenv("DLBENCH_STALE_AFTER")
    assert leases.stale_after() == 600.0


def test_a_lease_taken_over_stops_the_beats_and_is_raised_at_the_next_check():
    stored: dict = {}
    other = {"host": "elsewhere", "pid": "4242", "pid_start": "7", "heartbeat": "1.0"}
    with leases.Heartbeat(stored.update, read=lambda: dict(stored), every=0.01) as beat:
        beat.check(now=True)  # still this worker's: nothing raised
        stored.update(other)  # another worker judged this one dead and wrote itself over the lease
        deadline = time.monotonic() + 5
        while beat.lost is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert stored == other  # no beat of this worker refreshed the other's lease
        with pytest.raises(leases.LeaseLost, match="process 4242 on elsewhere"):
            beat.check()
    with pytest.raises(KeyboardInterrupt):
        with leases.Heartbeat(stored.update, read=lambda: dict(other), every=60) as beat:
            with pytest.raises(leases.LeaseLost):
                beat.check(now=True)
            raise KeyboardInterrupt
    assert stored != leases.RELEASED and stored["pid"] == str(os.getpid())  # the other's lease is never released


def test_an_unreadable_or_released_lease_is_not_taken_for_lost():
    for stored in ({}, {"host": "x", "pid": "oops"}, {**leases.RELEASED, "host": "x", "pid_start": ""}):
        with leases.Heartbeat(lambda f: None, read=lambda s=stored: s, every=60) as beat:
            beat.check(now=True)
