"""Shared fixtures: temporary Optuna and MLflow stores, and running the real `dlbench` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).resolve().parent / "specs"


@pytest.fixture
def stores(tmp_path):
    """(storage folder, tracking URI) in a fresh temporary directory."""
    return str(tmp_path / "studies"), f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


def dlbench(*args: str, cwd: Path = ROOT, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m dlbench ARGS` as a user would, and return the finished process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "dlbench", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"dlbench {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return proc


def write_spec(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def quick_run(name: str, storage: str, uri: str, *extra: str):
    """`dlbench run experiments/<name>.toml --quick` with 1 trial, 1 seed and 1 epoch per arm, in this process:
    (the loaded spec, its repeat runs as a pandas frame from MLflow)."""
    import mlflow

    from dlbench import cli, spaces

    exp = spaces.load(ROOT / "experiments" / f"{name}.toml")
    rc = cli.main(["run", str(ROOT / "experiments" / f"{name}.toml"), "--quick", "--trials", "1", "--seeds", "1",
                   "--epochs", "1", "--storage", storage, "--tracking-uri", uri, "--no-progress", *extra])
    assert rc == 0
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[f"{exp.name}-quick"], filter_string="tags.`dlbench.role` = 'repeat'")
    return exp, runs
