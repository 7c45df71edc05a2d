"""Startup: how fast `dlbench --help` and `dlbench list` answer, and where the time to the first epoch goes.

1. `dlbench --help` and `dlbench list` as a user types them (fresh process each), and whether they import TensorFlow.
2. `dlbench run --quick` from process start to the end of the first epoch (the real command, in a fresh process,
   into fresh stores), with its phases timed by the same steps the command takes, one after another.
Run: python bench/startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import ROOT, median, tempdir

# Runs in a fresh interpreter: the steps of `dlbench run --quick`, timed one by one (process start = time 0).
PHASES = r"""
import json, sys, time
t0 = float(sys.argv[1]); marks = [("interpreter start", time.time())]
def mark(name): marks.append((name, time.time()))
from dlbench import cli; mark("import dlbench.cli")
from dlbench.progress import quiet_libraries; quiet_libraries()
import keras; mark("import keras + tensorflow")
import optuna; mark("import optuna")
import mlflow; mark("import mlflow")
from dlbench import spaces, storage, study, tracking, spec as S, data, models, runtime, train; mark("import dlbench modules")
exp = spaces.load("tests/specs/tiny.toml"); mark("parse + validate the spec")
folder = sys.argv[2]
storage = storage.open_storage(folder + "/studies"); [study.open_study(exp, a.name, storage) for a in exp.arms]
mark("create Optuna journal + studies")
tracker = tracking.Tracker("sqlite:///" + folder + "/mlflow.db", exp.name); mark("create MLflow SQLite store")
tracker.store_spec(S.to_raw(exp)); mark("store the spec")
d = data.load(exp.dataset.name, exp.dataset.options); mark("load data")
runtime.set_determinism(True); keras.utils.set_random_seed(0)
m = models.get(exp.model).build(models.get(exp.model).hparams(), d); mark("build model")
m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
m.fit(d.train.x, d.train.y, epochs=1, verbose=0, validation_data=(d.val.x, d.val.y)); mark("compile + first epoch")
out = [(marks[0][0], marks[0][1] - t0)] + [(n, t - p) for (n, t), (_, p) in zip(marks[1:], marks)]
import os, tempfile; os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp()  # no template: MLflow migrates
t = time.time(); tracking.Tracker("sqlite:///" + folder + "/fresh/mlflow.db", exp.name)
out.append(("(not in the total) MLflow store created by MLflow's own migrations, as before the change",
            time.time() - t))
print(json.dumps(out))
"""

# Runs the real command in a fresh interpreter and prints when its first epoch ended.
FIRST_EPOCH = r"""
import sys, time
t0 = float(sys.argv[1])
from dlbench import progress
seen = []
original = progress.Progress.epoch
def epoch(self, item, epoch, logs, metric):
    if not seen:
        seen.append(time.time() - t0)
        print(f"FIRST_EPOCH {seen[0]:.3f}", flush=True)
    return original(self, item, epoch, logs, metric)
progress.Progress.epoch = epoch
from dlbench import cli
cli.main(["run", "tests/specs/tiny.toml", "--quick", "--no-progress", "--storage", sys.argv[2] + "/studies",
          "--tracking-uri", "sqlite:///" + sys.argv[2] + "/mlflow.db"])
"""

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}


def _wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - start


def _imports_tensorflow(args: list[str]) -> bool:
    out = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=ROOT, env=ENV, check=True,
                         capture_output=True, text=True)
    return any(line.rstrip().endswith(" tensorflow") for line in out.stderr.splitlines())


def run(repeats: int = 3) -> str:
    dl = [sys.executable, "-m", "dlbench"]
    helps = [_wall(dl + ["--help"]) for _ in range(repeats)]
    lists = [_wall(dl + ["list"]) for _ in range(repeats)]
    tf_help, tf_list = _imports_tensorflow(["-m", "dlbench", "--help"]), _imports_tensorflow(["-m", "dlbench", "list"])
    firsts, phases = [], []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", FIRST_EPOCH, repr(time.time()), tempdir("startup")],
                             cwd=ROOT, env=ENV, check=True, capture_output=True, text=True).stdout
        firsts.append(float(next(line.split()[1] for line in out.splitlines() if line.startswith("FIRST_EPOCH"))))
        out = subprocess.run([sys.executable, "-c", PHASES, repr(time.time()), tempdir("phases")],
                             cwd=ROOT, env=ENV, check=True, capture_output=True, text=True).stdout
        phases.append(json.loads(out.strip().splitlines()[-1]))
    names = [n for n, _ in phases[0]]
    per = {n: median([dict(p)[n] for p in phases]) for n in names}
    total = sum(v for n, v in per.items() if not n.startswith("(not"))
    return "\n".join([
        "## Startup",
        "",
        f"Fresh process each time, median of {repeats}.",
        "",
        "| command | median s | imports TensorFlow |",
        "|---|---|---|",
        f"| `dlbench --help` | {median(helps):.2f} | {'yes' if tf_help else 'no'} |",
        f"| `dlbench list` | {median(lists):.2f} | {'yes' if tf_list else 'no'} |",
        f"| `dlbench run tests/specs/tiny.toml --quick`: process start to end of first epoch | {median(firsts):.2f} "
        "| yes |",
        "",
        "Goal: `--help` and `list` under 1 s without TensorFlow. Where the time to the first epoch goes (the same "
        "steps timed one by one in a fresh process; median s):",
        "",
        "| phase | s | share |",
        "|---|---|---|",
        *[f"| {n} | {v:.2f} | {v / total:.0%} |" for n, v in per.items() if not n.startswith("(not")],
        f"| total | {total:.2f} | |",
        *[f"| {n} | {v:.2f} | |" for n, v in per.items() if n.startswith("(not")],
    ])


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    print(run(a.repeats))
