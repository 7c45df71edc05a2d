"""Workers: tuning throughput (trials per hour) of `dlbench run --workers 1` and `--workers 2` on this machine.

Every trial trains the same fixed good configuration (nothing is searched, no pruning), so the trials cost the same
in both runs and the difference is the parallelism alone. Throughput is read back from the Optuna storage: trials
finished divided by the span from the first trial's start to the last one's end (so process start-up and the seed
repeats after tuning are not counted). The two settings are interleaved, repeated --repeats times.
Run: python bench/workers.py [--trials 16] [--epochs 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from _common import FIXED_SPEC, ROOT, Clock, median, tempdir, write_spec


def one(workers: int, trials: int, epochs: int, tag: str, one_thread: bool = False) -> tuple[float, float]:
    """(trials per hour while tuning, wall seconds of the whole command)."""
    import optuna
    from optuna.trial import TrialState

    from dlbench import storage as stores

    folder = tempdir(f"workers-{workers}-{tag}")
    text = FIXED_SPEC.replace("trials = 1,", f"trials = {trials},")
    path = write_spec(text, folder, name=f"workers-{workers}", epochs=epochs)
    storage, uri = f"{folder}/studies", f"sqlite:///{folder}/mlflow.db"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if one_thread:  # TensorFlow's own thread settings: what one worker achieves on one core
        env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    with Clock() as c:
        subprocess.run([sys.executable, "-m", "dlbench", "run", str(path), "--workers", str(workers), "--storage",
                        storage, "--tracking-uri", uri, "--no-progress"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
    s = optuna.load_study(study_name=f"workers-{workers}/mlp", storage=stores.open_storage(storage))
    done = s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(done) == trials, f"{len(done)} of {trials} trials finished"
    span = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    return trials / span.total_seconds() * 3600, c.seconds


def run(trials: int = 16, epochs: int = 10, repeats: int = 2) -> str:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rates: dict[int, list[float]] = {1: [], 2: [], 0: []}  # 0: one worker held to one thread
    walls: dict[int, list[float]] = {1: [], 2: [], 0: []}
    for r in range(repeats):
        for w in ((1, 2, 0) if r % 2 == 0 else (0, 2, 1)):
            rate, wall = one(max(w, 1), trials, epochs, str(r), one_thread=w == 0)
            rates[w].append(rate)
            walls[w].append(wall)
    ratios = [b / a for a, b in zip(rates[1], rates[2])]
    ideal = [2 * c / a for a, c in zip(rates[1], rates[0])]
    labels = {1: "1", 2: "2 (1 thread each)", 0: "1, held to 1 thread"}
    return "\n".join([
        "## Workers: tuning throughput with `--workers 1` and `--workers 2`",
        "",
        f"{trials} trials of the fixed good configuration ({epochs} epochs each, no pruning) per run; "
        f"{os.cpu_count()} cores, threads divided between workers; {repeats} interleaved repeats.",
        "",
        "| workers | trials/hour while tuning (per repeat) | median | whole command wall s (median) |",
        "|---|---|---|---|",
        *[f"| {labels[w]} | {', '.join(f'{x:.0f}' for x in rates[w])} | {median(rates[w]):.0f} | "
          f"{median(walls[w]):.1f} |" for w in (1, 2, 0)],
        "",
        f"**Speed-up 2 workers / 1 worker: {median(ratios):.2f}x** (per repeat "
        f"{', '.join(f'{x:.2f}' for x in ratios)}). Goal: >= 1.7x.",
        "",
        f"What bounds it: one worker already uses both cores in part (TensorFlow's intra-op threads). Two perfectly "
        f"independent one-thread workers would give 2 x (one worker on one thread) / (one worker on two threads) = "
        f"**{median(ideal):.2f}x** here (per repeat {', '.join(f'{x:.2f}' for x in ideal)}).",
    ])


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    print(run(a.trials, a.epochs, a.repeats))
