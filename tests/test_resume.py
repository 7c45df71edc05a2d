"""Checkpoints and resume: a killed seed repeat goes on from its last checkpoint in the same run; a checkpoint that
cannot be used (corrupt, truncated, another spec) restarts the unit from epoch 0, never a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, SPECS, dlbench, write_spec
from dlbench import checkpoints, data, train
from dlbench.models import mlp

pytestmark = pytest.mark.e2e  # end to end: trains, spawns workers or starts servers

SPIRALS = data.load("spirals", {"n": 300})


def _fit(epochs, checkpoint=None, resume=None, every=2):
    hp = train.TrainHParams(learning_rate=0.05, checkpoint_every=every)
    return train.fit(lambda: mlp.build(mlp.HParams(depth=2, width=16), SPIRALS), SPIRALS, hp, epochs=epochs, seed=1,
                     monitor="val_accuracy", checkpoint=checkpoint, resume=resume)


def test_fit_checkpoints_every_n_epochs_and_resumes_with_the_optimizer_state():
    saved: list[train.TrainState] = []
    full = _fit(6, checkpoint=lambda s: saved.append(s))
    assert [s.epoch for s in saved] == [1, 3]  # after epochs 2 and 4; never after the last
    state = saved[0]
    assert len(state.history["loss"]) == 2 and state.optimizer and int(state.optimizer[0]) > 0  # iterations
    resumed = _fit(6, resume=state)
    assert len(resumed.history["loss"]) == 6
    assert resumed.history["loss"][:2] == full.history["loss"][:2]  # the checkpointed epochs are kept
    assert resumed.history["loss"][2] < resumed.history["loss"][0]  # training went on from the trained weights


def test_a_checkpoint_round_trips_and_refuses_another_spec_or_a_truncated_file(tmp_path):
    saved = []
    _fit(4, checkpoint=saved.append)
    store = checkpoints.Store(tmp_path, "exp", "aaaa")
    store.save("run1", saved[0])
    back = store.load("run1")
    assert back.epoch == saved[0].epoch and back.best_value == saved[0].best_value
    assert all(np.array_equal(a, b) for a, b in zip(back.weights, saved[0].weights))
    assert all(np.array_equal(a, b) for a, b in zip(back.optimizer, saved[0].optimizer))
    assert store.load("absent") is None

    other = checkpoints.Store(tmp_path, "exp", "bbbb")
    other.folder.mkdir(parents=True)
    (other.path("run1")).write_bytes(store.path("run1").read_bytes())
    with pytest.raises(checkpoints.Unreadable, match="spec hash aaaa"):
        other.load("run1")
    raw = store.path("run1").read_bytes()
    store.path("run1").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(checkpoints.Unreadable):
        store.load("run1")


def _spec(tmp_path, epochs_note=""):
    text = (SPECS / "tiny.toml").read_text().replace("[fixed]", "[fixed]\ncheckpoint_every = 3")
    return write_spec(tmp_path, text.replace('dataset = { name = "spirals", n = 300 }',
                                             'dataset = { name = "spirals", n = 600 }'))


def _kill_during_repeat(args, uri, tmp_path, min_epoch: int):
    """Start `dlbench run`, SIGKILL it once its seed repeat has a checkpoint past `min_epoch`; the repeat's run id."""
    log = open(tmp_path / "first-run.log", "w+")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            time.sleep(0.2)
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError(f"dlbench ended (exit {proc.returncode}) before it could be killed:\n"
                                     f"{log.read()[-3000:]}")
            for f in (tmp_path / "ckpt").rglob("*.npz"):
                try:
                    state = checkpoints.Store(f.parent.parent.parent, f.parent.parent.name, f.parent.name).load(f.stem)
                except checkpoints.Unreadable:
                    continue
                client = MlflowClient(tracking_uri=uri)
                if state and state.epoch >= min_epoch and client.get_run(f.stem).data.tags.get("dlbench.role") == "repeat":
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(30)
                    return f.stem, state.epoch
        raise AssertionError("the seed repeat never reached its checkpoint")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_seed_repeat_killed_mid_run_resumes_from_its_checkpoint_in_the_same_run(stores, tmp_path):
    storage, uri = stores
    args = [str(_spec(tmp_path)), "--storage", storage, "--tracking-uri", uri, "--trials", "1", "--seeds", "1",
            "--epochs", "120", "--arms", "tanh", "--checkpoints", str(tmp_path / "ckpt")]
    run_id, epoch = _kill_during_repeat([sys.executable, "-m", "dlbench", "run", *args], uri, tmp_path, 8)

    dlbench("run", *args)
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["dlbench.state"] == "COMPLETE"
    resumed = int(run.data.tags["dlbench.resumed_from_epoch"])
    assert resumed >= epoch + 1 and resumed % 3 == 0
    for key in ("loss", "val_accuracy"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == list(range(120))  # each epoch once
    assert "test_accuracy" in run.data.metrics
    exp = client.get_experiment_by_name("tiny")
    repeats = client.search_runs([exp.experiment_id], "tags.`dlbench.role` = 'repeat'")
    assert [r.info.run_id for r in repeats] == [run_id]  # resumed, not run again
    assert not list((tmp_path / "ckpt").rglob("*.npz"))

    # save_models = "repeats" (the default): the repeat's final model is an artifact keras can load.
    import keras

    model = keras.saving.load_model(client.download_artifacts(run_id, "model/model.keras", str(tmp_path)))
    x = data.load("spirals", {"n": 600}).test.x[:5]
    assert model.predict(x, verbose=0).shape == (5, 2)


def test_a_corrupt_checkpoint_restarts_the_repeat_from_epoch_0_with_a_note(stores, tmp_path):
    storage, uri = stores
    args = [str(_spec(tmp_path)), "--storage", storage, "--tracking-uri", uri, "--trials", "1", "--seeds", "1",
            "--epochs", "120", "--arms", "tanh", "--checkpoints", str(tmp_path / "ckpt")]
    run_id, _ = _kill_during_repeat([sys.executable, "-m", "dlbench", "run", *args], uri, tmp_path, 5)
    path = next((tmp_path / "ckpt").rglob(f"{run_id}.npz"))
    path.write_bytes(path.read_bytes()[:100])  # truncated

    dlbench("run", *args)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tiny")
    repeats = {r.info.run_id: r for r in client.search_runs([exp.experiment_id], "tags.`dlbench.role` = 'repeat'")}
    old = repeats.pop(run_id)
    assert old.info.status == "FAILED" and "checkpoint not used" in old.data.tags["dlbench.fail_reason"]
    (new,) = repeats.values()  # the seed restarted in a fresh run, so no run holds an epoch twice
    assert new.info.status == "FINISHED" and "checkpoint not used" in new.data.tags["dlbench.checkpoint_note"]
    assert "dlbench.resumed_from_epoch" not in new.data.tags
    assert [m.step for m in client.get_metric_history(new.info.run_id, "loss")] == list(range(120))
