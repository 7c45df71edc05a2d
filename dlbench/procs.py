"""Worker identity: which process on which host holds a trial, and whether that process is still alive."""

from __future__ import annotations

import os
import socket
import time

HOST = socket.gethostname()
# A trial held by a worker on another host is taken as dead when its heartbeat is older than this (seconds).
STALE_AFTER = float(os.environ.get("DLBENCH_STALE_AFTER", "600"))


def start_time(pid: int) -> str:
    """The kernel's start time of a process (guards against a recycled pid); '' where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def identity() -> dict[str, str]:
    pid = os.getpid()
    return {"host": HOST, "pid": str(pid), "pid_start": start_time(pid), "heartbeat": f"{time.time():.0f}"}


def alive(host: str | None, pid: str | None, pid_start: str | None, heartbeat: str | None) -> bool:
    """Whether the worker that wrote this identity may still be running.

    On this host the process table answers; for another host, a heartbeat younger than STALE_AFTER does.
    """
    if host != HOST:
        try:
            return time.time() - float(heartbeat or 0) < STALE_AFTER
        except ValueError:
            return False
    try:
        os.kill(int(pid or -1), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return not pid_start or start_time(int(pid)) == pid_start
