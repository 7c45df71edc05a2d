"""Leases: which worker holds a unit of work (a tuning trial or a seed repeat), kept live while it runs.

A worker claims a unit under the claim lock and writes its `Holder` (host, pid, the pid's start time, a
heartbeat) where the unit is recorded: Optuna user attributes for a trial, MLflow tags for a seed repeat. A
`Heartbeat` thread then rewrites the heartbeat every `interval()` seconds for as long as the worker process runs,
through building, compiling, pretraining and epochs of any length. Another worker takes the unit over only when
its holder is dead (`alive`): on the same host the process table answers; for another host, a heartbeat older than
`DLBENCH_STALE_AFTER` seconds (default 600) does.

Nothing here imports Optuna, MLflow or Keras: the writers come in, and the clock and the host can be faked.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from typing import Callable, Mapping

# This machine's name. DLBENCH_HOST overrides it: only the tests use that, to run two "machines" on one.
HOST = os.environ.get("DLBENCH_HOST") or socket.gethostname()
DEFAULT_STALE_AFTER = 600.0

Clock = Callable[[], float]
Writer = Callable[[Mapping[str, str]], None]


def stale_after() -> float:
    """Seconds without a heartbeat after which another host's worker counts as dead (DLBENCH_STALE_AFTER)."""
    return float(os.environ.get("DLBENCH_STALE_AFTER", DEFAULT_STALE_AFTER))


def interval(stale: float | None = None) -> float:
    """Seconds between heartbeats: a sixth of the threshold, so five beats may be lost before a unit looks dead."""
    return min(60.0, max(0.2, (stale if stale is not None else stale_after()) / 6))


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a unit: a process on a host (pid_start guards against a recycled pid) and its last heartbeat."""

    host: str
    pid: int
    pid_start: str
    heartbeat: float

    @property
    def released(self) -> bool:
        """Let go by its worker (stopped with Ctrl-C): free to take over at once, and not a death."""
        return self.pid <= 0

    def fields(self) -> dict[str, str]:
        return {"host": self.host, "pid": str(self.pid), "pid_start": self.pid_start,
                "heartbeat": f"{self.heartbeat:.1f}"}

    @classmethod
    def parse(cls, fields: Mapping[str, str | None]) -> "Holder | None":
        """The holder written by `fields()`, or None when it is missing or unreadable (never written: dead)."""
        try:
            return cls(str(fields["host"]), int(fields["pid"] or ""), str(fields.get("pid_start") or ""),
                       float(fields["heartbeat"] or ""))
        except (KeyError, TypeError, ValueError):
            return None


def start_time(pid: int) -> str:
    """The kernel's start time of a process; '' where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


RELEASED = {"pid": "0", "heartbeat": "0"}  # what a worker writes over its holder when it lets a unit go


def me(clock: Clock = time.time) -> Holder:
    pid = os.getpid()
    return Holder(HOST, pid, start_time(pid), clock())


def process_alive(pid: int, pid_start: str) -> bool:
    """Whether process `pid` of this host runs and is the one that started at `pid_start`."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError, OverflowError):
        return False
    except PermissionError:
        return True
    return not pid_start or start_time(pid) == pid_start


def alive(holder: Holder | None, *, host: str | None = None, clock: Clock = time.time, stale: float | None = None,
          process: Callable[[int, str], bool] = process_alive) -> bool:
    """Whether the unit's holder may still be working on it.

    Args:
        holder: what the unit records, or None (a unit whose holder never wrote itself is dead).
        host: this machine (default HOST).
        clock: the time now, in seconds.
        stale: seconds of silence after which another host's holder is dead (default `stale_after()`).
        process: the process-table check for this host's holders.
    """
    if holder is None or holder.released:
        return False
    if holder.host != (host if host is not None else HOST):
        return clock() - holder.heartbeat < (stale if stale is not None else stale_after())
    return process(holder.pid, holder.pid_start)


class LeaseLost(Exception):
    """Another worker took this worker's unit over (its heartbeat looked stale to them): the unit is theirs now, and
    this worker drops it without writing anything more to it."""


Reader = Callable[[], Mapping[str, "str | None"]]


class Heartbeat:
    """Keeps one unit's lease live: writes the full holder on entry, then the heartbeat every `every` seconds from a
    daemon thread until exit. A failed write (a database hiccup) is retried on the next beat, never raised. Left by
    Ctrl-C (a KeyboardInterrupt), it releases the lease so that the next run takes the unit over at once.

    With `read` (the unit's holder fields as stored), every beat first checks that the lease is still this
    worker's. Once another worker holds it (a stall longer than the stale threshold made this one look dead), the
    beats stop, so as not to keep the other's lease alive, and `check()` raises LeaseLost: the unit's owner calls it
    at every epoch and before recording the result.
    """

    def __init__(self, write: Writer, read: Reader | None = None, every: float | None = None,
                 clock: Clock = time.time):
        self.write = write
        self.read = read
        self.every = every if every is not None else interval()
        self.clock = clock
        self.failures = 0
        self.mine: Holder | None = None
        self.lost: Holder | None = None  # the holder that took the unit over
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Heartbeat":
        self.mine = me(self.clock)
        self.write(self.mine.fields())
        self._thread = threading.Thread(target=self._beat, name="dlbench-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _taken(self) -> Holder | None:
        """The other worker now holding the unit, or None while it is still this one's (or cannot be read)."""
        holder = Holder.parse(self.read()) if self.read else None
        if holder is None or self.mine is None or holder.released:
            return None
        same = (holder.host, holder.pid, holder.pid_start) == (self.mine.host, self.mine.pid, self.mine.pid_start)
        return None if same else holder

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.lost = self.lost or self._taken()
                if self.lost:
                    return
                self.write({"heartbeat": f"{self.clock():.1f}"})
            except Exception:  # noqa: BLE001 - the next beat retries; a unit only dies after several misses
                self.failures += 1

    def check(self, now: bool = False) -> None:
        """Raise LeaseLost if another worker holds the unit (`now`: read the holder now, not at the last beat)."""
        if now and not self.lost:
            self.lost = self._taken()
        if self.lost:
            raise LeaseLost(f"taken over by process {self.lost.pid} on {self.lost.host}, which judged this worker "
                            f"dead (no heartbeat for {stale_after():g} s); dropped here, finished there")

    def __exit__(self, kind, error, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if kind is not None and issubclass(kind, KeyboardInterrupt) and not self.lost:
            try:
                self.write(RELEASED)
            except Exception:  # noqa: BLE001 - unreleased, it is taken over once the process is gone
                pass
