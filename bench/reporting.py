"""Reporting at scale: `dlbench compare` on an experiment with 1,000 trials per arm and 50 seed repeats per arm.

The stored runs are SYNTHETIC: written straight through the Optuna and MLflow APIs with random values (no
training), so the benchmark measures reading and reporting only. Run: python bench/reporting.py
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from _common import ROOT, SEARCH_SPEC, Clock, median, tempdir, write_spec


def populate(folder: str, trials: int, repeats: int, epochs: int = 30) -> tuple[str, str, str]:
    import numpy as np
    import optuna
    from optuna.distributions import FloatDistribution

    from dlbench import spaces, spec, storage, study
    from dlbench import tracking as T

    path = write_spec(SEARCH_SPEC, folder, name="synthetic-scale", trials=trials, pruner="none")
    raw = spec.to_raw(spaces.load(path))
    raw["arms"] = {"mlp": raw["arms"]["mlp"], "wide": {"init": "he_normal"}}
    exp = spec.parse(raw, path)
    storage_url, uri = f"{folder}/studies", f"sqlite:///{folder}/mlflow.db"
    storage = storage.open_storage(storage_url)
    tracker = T.Tracker(uri, exp.name)
    tracker.store_spec(spec.to_raw(exp))
    rng = np.random.default_rng(0)
    for k, arm in enumerate(exp.arm_names):
        s = study.open_study(exp, arm, storage)
        dist = {"learning_rate": FloatDistribution(1e-4, 3e-2, log=True)}
        s.add_trials([optuna.trial.create_trial(params={"learning_rate": float(10 ** rng.uniform(-4, -1.6))},
                                                distributions=dist, value=float(rng.uniform(0.5, 0.99)))
                      for _ in range(trials)])
        parent = tracker.create_run(arm, {T.TAG_ROLE: T.ROLE_ARM, T.TAG_ARM: arm, T.TAG_SPEC_HASH: exp.spec_hash,
                                          T.TAG_CONFIG: "synthetic", "dlbench.synthetic": "true"})
        for n in range(trials):  # trial runs exist in a real store too, and the searches must skip them
            rid = tracker.create_run(f"{arm}/trial-{n}", {T.TAG_ROLE: T.ROLE_TRIAL, T.TAG_ARM: arm,
                                                          T.TAG_TRIAL: n}, parent)
            tracker.end_run(rid, T.STATE_COMPLETE)
        for seed in range(repeats):
            rid = tracker.create_run(f"{arm}/seed-{seed}", {T.TAG_ROLE: T.ROLE_REPEAT, T.TAG_ARM: arm,
                                                            T.TAG_SEED: seed, T.TAG_CONFIG: "synthetic"}, parent)
            curve = np.clip(0.9 + 0.02 * k - 0.5 * np.exp(-np.arange(epochs) / 4) + rng.normal(0, 0.01, epochs), 0, 1)
            for e, v in enumerate(curve):
                tracker.log_metrics(rid, {"val_accuracy": float(v)}, step=e)
            tracker.log_metrics(rid, {"test_accuracy": float(curve[-1] - 0.01), "best_val_accuracy": float(curve.max())})
            tracker.end_run(rid, T.STATE_COMPLETE)
        tracker.end_run(parent, T.STATE_COMPLETE)
    return exp.name, storage_url, uri


def _timed(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the child, stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dlbench", *args], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024, out.stdout


def run(trials: int = 1000, repeats: int = 50, times: int = 3) -> str:
    folder = tempdir("reporting")
    with Clock() as gen:
        name, storage, uri = populate(folder, trials, repeats)
    common = ["compare", name, "--storage", storage, "--tracking-uri", uri]
    table, full = [], []
    for _ in range(times):
        s, mem_t, out = _timed(common + ["--no-log"])
        table.append(s)
        s, mem_f, _ = _timed(common)
        full.append(s)
    report = json.loads(_timed(common + ["--no-log", "--format", "json"])[2])
    assert [a["n"] for a in report["arms"]] == [repeats, repeats]
    assert [a["trials_complete"] for a in report["arms"]] == [trials, trials]
    return "\n".join([
        "## Reporting at scale",
        "",
        f"`dlbench compare` on a SYNTHETIC experiment: 2 arms x {trials} trials (Optuna) and {trials} trial runs + "
        f"{repeats} seed repeats with {30}-epoch histories per arm (MLflow, SQLite), written through the APIs in "
        f"{gen.seconds:.0f} s. Wall time of the whole command (process start, imports, reading, statistics), "
        f"median of {times}:",
        "",
        "| command | median s | peak RSS MiB |",
        "|---|---|---|",
        f"| `dlbench compare NAME --no-log` (table only) | {median(table):.2f} | {mem_t:.0f} |",
        f"| `dlbench compare NAME` (also writes the comparison run: 3 plots + 5 Optuna plots per arm + md/csv/json) | "
        f"{median(full):.2f} | {mem_f:.0f} |",
        "",
        f"Goal: < 5 s. Peak RSS is the largest of the child processes so far (ru_maxrss).",
    ])


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=50)
    a = p.parse_args()
    print(run(a.trials, a.repeats))
