"""The tracker against a real MLflow SQLite store: buffered epoch metrics are complete once a run ends."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from dlbench import tracking as T


def test_epoch_metrics_are_buffered_then_all_written_when_the_run_ends(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = T.Tracker(uri, "buffering")
    run_id = tracker.create_run("arm/trial-0", {T.TAG_ROLE: T.ROLE_TRIAL})
    hook = tracker.epoch_logger(run_id, flush_every=3600)
    for epoch in range(1500):  # more than one MLflow batch (1000 metrics)
        hook(epoch, {"loss": 1.0 / (epoch + 1), "val_accuracy": epoch / 1500})
    client = MlflowClient(tracking_uri=uri)
    assert client.get_metric_history(run_id, "loss") == []  # nothing written per epoch
    tracker.end_run(run_id, T.STATE_COMPLETE)
    history = client.get_metric_history(run_id, "val_accuracy")
    assert sorted(m.step for m in history) == list(range(1500))
    assert client.get_run(run_id).info.status == "FINISHED"


def test_epoch_metrics_are_flushed_while_the_run_is_live(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = T.Tracker(uri, "live")
    run_id = tracker.create_run("arm/seed-0", {T.TAG_ROLE: T.ROLE_REPEAT})
    hook = tracker.epoch_logger(run_id, flush_every=0.0)  # every epoch
    hook(0, {"loss": 0.5})
    assert [m.value for m in MlflowClient(tracking_uri=uri).get_metric_history(run_id, "loss")] == [0.5]


def test_new_stores_start_from_one_migrated_template_and_point_at_their_own_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("a", "b"):
        uri = f"sqlite:///{tmp_path}/{name}/mlflow.db"
        tracker = T.Tracker(uri, f"exp-{name}")
        run_id = tracker.create_run("arm", {T.TAG_ROLE: T.ROLE_ARM})
        tracker.end_run(run_id, T.STATE_COMPLETE)
        client = MlflowClient(tracking_uri=uri)
        assert client.get_run(run_id).info.status == "FINISHED"
        assert client.get_experiment("0").artifact_location == (tmp_path / name / "artifacts" / "0").as_uri()
        assert [e.name for e in client.search_experiments()] == [f"exp-{name}", "Default"]
    assert len(list((tmp_path / "cache" / "dlbench").glob("mlflow-*-empty.db"))) == 1


@pytest.mark.e2e
def test_workers_starting_together_without_a_template_create_the_store_once(tmp_path):
    # An unwritable cache: no template, so MLflow migrates the new store itself, under the lock, once.
    (tmp_path / "cache").write_text("not a folder")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    code = f"from dlbench import tracking as T; T.Tracker({uri!r}, 'together')"
    workers = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for w in workers:
        assert w.wait(120) == 0, w.stderr.read()[-3000:]
    assert [e.name for e in MlflowClient(tracking_uri=uri).search_experiments()] == ["together", "Default"]
