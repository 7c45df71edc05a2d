"""Shared setup for the benchmarks: the fixed problem (digits MLP search), timing helpers and the report header."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 0.99  # val_accuracy on the fixed digits split
MAX_EPOCHS = 30
# The calibrated good configuration (reaches 0.990-0.997 val_accuracy on this split).
GOOD = {"learning_rate": 3e-3, "width": 256, "depth": 2, "dropout": 0.1, "activation": "relu", "batch_size": 32}

SEARCH_SPEC = f"""
name = "{{name}}"
description = "benchmark: the shared digits MLP search space"
dataset = "digits"
model = "mlp"
metric = "val_accuracy"
baseline = "mlp"
seeds = 1
budget = {{{{ trials = {{trials}}, epochs = {MAX_EPOCHS} }}}}
pruner = "{{pruner}}"

[fixed]
optimizer = "adam"

[search]
learning_rate = {{{{ low = 1e-4, high = 3e-2, log = true }}}}
width = {{{{ choices = [32, 64, 128, 256] }}}}
depth = {{{{ low = 1, high = 4 }}}}
dropout = {{{{ low = 0.0, high = 0.5 }}}}
activation = {{{{ choices = ["relu", "sigmoid"] }}}}
batch_size = {{{{ choices = [32, 64, 128] }}}}

[arms.mlp]
init = "glorot_uniform"
"""

FIXED_SPEC = f"""
name = "{{name}}"
dataset = "digits"
model = "mlp"
metric = "val_accuracy"
baseline = "mlp"
seeds = 1
budget = {{{{ trials = 1, epochs = {{epochs}} }}}}
pruner = "none"

[fixed]
optimizer = "adam"
learning_rate = {GOOD["learning_rate"]}
width = {GOOD["width"]}
depth = {GOOD["depth"]}
dropout = {GOOD["dropout"]}
batch_size = {GOOD["batch_size"]}

[arms.mlp]
activation = "{GOOD["activation"]}"
"""


def write_spec(text: str, folder: str | Path, **kw) -> Path:
    path = Path(folder) / f"{kw['name']}.toml"
    path.write_text(text.format(**kw))
    return path


def tempdir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=f"dlbench-bench-{prefix}-")


def versions() -> str:
    out = []
    for pkg in ("tensorflow", "keras", "optuna", "mlflow", "keras-tuner"):
        try:
            out.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def machine() -> str:
    return f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}"


def median(xs):
    return statistics.median(xs)


class Clock:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
