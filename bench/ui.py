"""The MLflow UI as `dlbench ui` starts it: time to answer and memory, with MLflow's job executor off (dlbench's
default) and on (MLflow's default), side by side; and whether stopping `dlbench ui` with SIGTERM leaves anything.

Each start: `dlbench ui` on a fresh port over one small store, timed from process start to the first answer of
/health; then, 5 s later, the resident memory of its whole process tree. The two settings alternate.
Run: python bench/ui.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
from _common import ROOT, median, tempdir


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_once(uri: str, jobs: bool) -> dict:
    port = _port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if jobs else "false"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dlbench", "ui", "--port", str(port), "--tracking-uri", uri],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.perf_counter() - t0 > 180:
                raise RuntimeError("the UI did not start")
            time.sleep(0.1)
    ready = time.perf_counter() - t0
    time.sleep(5)
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    rss = sum(p.memory_info().rss for p in tree if p.is_running())
    pids = [p.pid for p in tree]
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    deadline = time.time() + 30
    while time.time() < deadline and any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                                         for p in pids):
        time.sleep(0.2)
    left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    for p in left:  # leave the machine clean whatever the result
        psutil.Process(p).kill()
    return {"ready": ready, "rss": rss / 2**20, "processes": len(tree), "left": len(left)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    uri = f"sqlite:///{tempdir('ui')}/mlflow.db"
    from dlbench import tracking

    tracking.Tracker(uri, "bench-ui")  # the store exists, migrated, before the first start
    results = {True: [], False: []}
    for _ in range(a.repeats):
        for jobs in (False, True):
            results[jobs].append(start_once(uri, jobs))
    off, on = results[False], results[True]
    m = {k: (median([r[k] for r in off]), median([r[k] for r in on])) for k in ("ready", "rss", "processes")}
    lines = [
        "## MLflow UI (`dlbench ui`)",
        "",
        f"Command: `python bench/ui.py --repeats {a.repeats}`: `dlbench ui` over one small SQLite store, started "
        f"{a.repeats} times per setting (alternating), time from process start to the first /health answer, and "
        "the resident memory of its process tree 5 s later; then SIGTERM to `dlbench ui`.",
        "",
        "| MLflow job executor | start to /health (s) | memory of the process tree (MiB) | processes | "
        "processes left after SIGTERM |",
        "|---|---|---|---|---|",
        f"| off (dlbench's default) | {m['ready'][0]:.1f} | {m['rss'][0]:.0f} | {m['processes'][0]:.0f} | "
        f"{max(r['left'] for r in off)} |",
        f"| on (MLflow's default) | {m['ready'][1]:.1f} | {m['rss'][1]:.0f} | {m['processes'][1]:.0f} | "
        f"{max(r['left'] for r in on)} |",
        "",
        f"Off / on: start time {m['ready'][0] / m['ready'][1]:.2f}x, memory {m['rss'][0] / m['rss'][1]:.2f}x. "
        "dlbench never submits server-side jobs, so nothing is lost with the executor off; "
        "`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true dlbench ui` turns it back on.",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
