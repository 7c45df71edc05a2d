"""End to end: `dlbench run` into real Optuna and MLflow stores, read back through their own clients."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from conftest import ROOT, SPECS, dlbench, write_spec
from dlbench.storage import open_storage

pytestmark = pytest.mark.e2e  # end to end: trains, spawns workers or starts servers

TINY = str(SPECS / "tiny.toml")
ARMS = ("tanh", "relu")


def _studies(storage: str, name: str = "tiny") -> dict[str, optuna.Study]:
    s = open_storage(storage)
    return {a: optuna.load_study(study_name=f"{name}/{a}", storage=s) for a in ARMS}


def _runs(uri: str, name: str = "tiny"):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    return client, client.search_runs([exp.experiment_id], max_results=10_000)


def _by_role(runs, role):
    return [r for r in runs if r.data.tags.get("dlbench.role") == role]


def _finished(study) -> list:
    return study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))


def test_run_logs_everything_named_and_tagged_as_designed(stores):
    storage, uri = stores
    out = dlbench("run", TINY, "--storage", storage, "--tracking-uri", uri)
    assert "dlbench ui --tracking-uri" in out.stdout
    assert "tanh (baseline)" in out.stdout and "relu" in out.stdout

    # Optuna: one study per arm, "<spec>/<arm>", with the budgeted number of finished trials.
    studies = _studies(storage)
    for arm, study in studies.items():
        assert len(_finished(study)) == 2
        assert study.user_attrs["spec_hash"] and study.user_attrs["sampler"] == "TPESampler"
        assert all(t.user_attrs["mlflow_run_id"] for t in study.trials)

    # MLflow, read through mlflow.search_runs as a user would.
    mlflow.set_tracking_uri(uri)
    df = mlflow.search_runs(experiment_names=["tiny"], max_results=1000)
    names = sorted(df["tags.mlflow.runName"])
    assert names == sorted(["comparison", "tanh", "relu", "tanh/trial-0", "tanh/trial-1", "relu/trial-0", "relu/trial-1",
                            "tanh/seed-0", "tanh/seed-1", "relu/seed-0", "relu/seed-1"])
    assert Counter(df["tags.dlbench.role"]) == {"arm": 2, "trial": 4, "repeat": 4, "comparison": 1}
    client, runs = _runs(uri)
    arm_ids = {r.data.tags["dlbench.arm"]: r.info.run_id for r in _by_role(runs, "arm")}
    for r in _by_role(runs, "trial") + _by_role(runs, "repeat"):
        tags, params = r.data.tags, r.data.params
        assert tags["mlflow.parentRunId"] == arm_ids[tags["dlbench.arm"]]
        assert tags["dlbench.state"] in ("COMPLETE", "PRUNED")
        assert r.info.status == "FINISHED"
        for key in ("dlbench.spec_hash", "dlbench.version", "mlflow.source.git.commit", "dlbench.device",
                    "dlbench.keras", "dlbench.determinism"):
            assert tags[key], key
        # Every hyperparameter actually used: fixed and sampled.
        assert {"depth", "width", "batch_size", "learning_rate", "activation", "seed", "epochs"} <= set(params)
        assert params["activation"] == tags["dlbench.arm"]
        # Per-epoch metrics under Keras's keys with step = epoch.
        hist = client.get_metric_history(r.info.run_id, "val_accuracy")
        assert [m.step for m in hist] == [0, 1, 2]
    for r in _by_role(runs, "repeat"):
        assert {"test_accuracy", "test_loss", "best_val_accuracy"} <= set(r.data.metrics)
    # Trial run ids link both ways.
    trial_runs = {(r.data.tags["dlbench.arm"], int(r.data.tags["dlbench.trial_number"])): r.info.run_id
                  for r in _by_role(runs, "trial")}
    for arm, study in studies.items():
        for t in study.trials:
            assert t.user_attrs["mlflow_run_id"] == trial_runs[(arm, t.number)]


def test_rerun_resumes_without_duplicates_and_extends_the_budget(stores):
    storage, uri = stores
    dlbench("run", TINY, "--storage", storage, "--tracking-uri", uri, "--seeds", "1")
    _, before = _runs(uri)
    dlbench("run", TINY, "--storage", storage, "--tracking-uri", uri, "--seeds", "1")
    _, again = _runs(uri)
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in before)
    for study in _studies(storage).values():
        assert [t.number for t in study.trials] == [0, 1]

    # A larger budget runs only the missing trials; the best config may change, so repeats follow it.
    dlbench("run", TINY, "--storage", storage, "--tracking-uri", uri, "--seeds", "1", "--trials", "3")
    for study in _studies(storage).values():
        assert [t.number for t in study.trials] == [0, 1, 2]
    _, after = _runs(uri)
    names = Counter(r.data.tags["mlflow.runName"] for r in after)
    assert max(names.values()) <= 2  # a seed run may be redone for a new best config, nothing else twice
    assert names["tanh/trial-2"] == 1 and names["relu/trial-2"] == 1 and names["tanh"] == 1


def test_changed_spec_under_the_same_name_is_refused(stores, tmp_path):
    storage, uri = stores
    dlbench("run", TINY, "--storage", storage, "--tracking-uri", uri, "--quick")
    out = dlbench("run", TINY, "--storage", storage, "--tracking-uri", uri, "--quick", "--epochs", "1",
                  check=False)
    assert out.returncode == 2
    assert "different version of this experiment" in out.stderr


def test_a_killed_workers_trial_is_taken_over_with_its_number_parameters_and_run(stores, tmp_path):
    # The trial of a SIGKILLed worker is resumed by the rerun: the same Optuna trial (number, parameters) and the
    # same MLflow run, continued from its last checkpoint; the budget holds two trials, no replacement.
    storage, uri = stores
    path = write_spec(tmp_path, (SPECS / "tiny.toml").read_text().replace("[fixed]", "[fixed]\ncheckpoint_every = 2"))
    args = [sys.executable, "-m", "dlbench", "run", str(path), "--storage", storage, "--tracking-uri", uri,
            "--epochs", "60", "--seeds", "1", "--arms", "tanh", "--checkpoints", str(tmp_path / "ckpt")]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        victim = None
        while time.time() < deadline and victim is None:
            time.sleep(0.2)
            try:
                study = optuna.load_study(study_name="tiny/tanh", storage=open_storage(storage))
            except KeyError:
                continue
            for t in study.get_trials(states=(TrialState.RUNNING,)):
                if t.number == 1 and "mlflow_run_id" in t.user_attrs and len(t.intermediate_values) >= 6:
                    victim = t
        assert victim is not None, "trial 1 never got past epoch 6"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()

    dlbench("run", str(path), "--storage", storage, "--tracking-uri", uri, "--epochs", "60", "--seeds", "1",
            "--arms", "tanh", "--checkpoints", str(tmp_path / "ckpt"))
    study = optuna.load_study(study_name="tiny/tanh", storage=open_storage(storage))
    assert [t.number for t in study.trials] == [0, 1]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    again = study.trials[1]
    assert again.params == victim.params and again.user_attrs["mlflow_run_id"] == victim.user_attrs["mlflow_run_id"]
    assert again.user_attrs["takeovers"] == "1" and again.user_attrs["pid"] != victim.user_attrs["pid"]
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(victim.user_attrs["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["dlbench.state"] in ("COMPLETE", "PRUNED")
    resumed = int(run.data.tags["dlbench.resumed_from_epoch"])
    assert resumed >= 6 and resumed % 2 == 0  # after a checkpoint, every 2 epochs
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
    assert steps == list(range(len(steps))) and len(steps) > resumed  # one value per epoch, none twice
    assert not list((tmp_path / "ckpt").rglob("*.npz"))  # a finished unit's checkpoint is deleted


def test_diverging_trials_are_failed_and_the_study_completes(stores, tmp_path):
    storage, uri = stores
    text = (SPECS / "tiny.toml").read_text().replace(
        "learning_rate = { low = 1e-3, high = 1e-1, log = true }", "learning_rate = { low = 1e12, high = 1e13 }"
    ).replace("[fixed]", "[fixed]\noptimizer = \"sgd\"").replace('activation = "tanh"', 'activation = "linear"')
    path = write_spec(tmp_path, text)
    out = dlbench("run", str(path), "--storage", storage, "--tracking-uri", uri)
    assert "no trial completed" in out.stderr
    assert "no comparison: experiment 'tiny' has no finished seed repeats yet" in out.stderr
    for study in _studies(storage).values():
        assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]  # diverged counts; no retry
        assert all(t.user_attrs["fail_reason"].startswith("diverged") for t in study.trials)
    _, runs = _runs(uri)
    trials = _by_role(runs, "trial")
    assert len(trials) == 4 and all(r.info.status == "FAILED" for r in trials)
    assert not _by_role(runs, "repeat")


def test_two_workers_share_the_budget_without_duplicates_or_losses(stores):
    storage, uri = stores
    dlbench("run", TINY, "--storage", storage, "--tracking-uri", uri, "--workers", "2", "--trials", "4",
            "--seeds", "2")
    for study in _studies(storage).values():
        assert [t.number for t in study.trials] == [0, 1, 2, 3]
        assert len(_finished(study)) == 4
        assert len({t.user_attrs["pid"] for t in study.trials}) == 2  # both workers took trials
    _, runs = _runs(uri)
    names = Counter(r.data.tags["mlflow.runName"] for r in runs)
    assert set(names.values()) == {1}
    assert len(_by_role(runs, "comparison")) == 1
    assert len(_by_role(runs, "trial")) == 8 and len(_by_role(runs, "repeat")) == 4
