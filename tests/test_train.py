"""Training: learning happens, seeds make runs identical, divergence is caught, hooks see every epoch."""

from __future__ import annotations

import math

import pytest

from dlbench import data, runtime, train
from dlbench.models import mlp

SPIRALS = data.load("spirals", {"n": 400})


def _fit(seed=0, lr=0.05, epochs=6, hooks=(), evaluate_test=False, width=32, optimizer="adam"):
    hp = train.TrainHParams(optimizer=optimizer, learning_rate=lr, batch_size=32)
    return train.fit(lambda: mlp.build(mlp.HParams(depth=2, width=width), SPIRALS), SPIRALS, hp, epochs=epochs,
                     seed=seed, monitor="val_accuracy", hooks=hooks, evaluate_test=evaluate_test)


def test_training_lowers_the_loss_and_reports_every_epoch():
    seen = []
    r = _fit(epochs=8, hooks=[lambda e, logs: seen.append((e, sorted(logs)))])
    assert r.history["loss"][-1] < r.history["loss"][0]
    assert [e for e, _ in seen] == list(range(8))
    assert [k for k in seen[0][1] if not k.startswith("grad_norm/")] == [
        "accuracy", "learning_rate", "loss", "val_accuracy", "val_loss"]
    assert r.best_value == max(r.history["val_accuracy"])
    assert r.best_epoch == r.history["val_accuracy"].index(r.best_value)


def test_same_seed_gives_identical_results_and_another_seed_does_not():
    a = _fit(seed=3, evaluate_test=True)
    b = _fit(seed=3, evaluate_test=True)
    c = _fit(seed=4, evaluate_test=True)
    assert a.history == b.history
    assert a.test == b.test and set(a.test) == {"test_loss", "test_accuracy"}
    assert a.history["loss"] != c.history["loss"]


def test_a_huge_learning_rate_raises_diverged():
    with pytest.raises(train.Diverged) as e:
        _fit(lr=1e9, optimizer="sgd", epochs=3)
    assert not math.isfinite(e.value.logs["loss"])


def test_direction_follows_the_metric():
    assert train.direction("val_loss") == "minimize"
    assert train.direction("val_accuracy") == "maximize"
    assert runtime.threads_per_worker(100) == 1


def test_every_task_logs_the_metrics_a_spec_may_name():
    # train.TASKS (what fit compiles) and data.TASK_METRICS (what specs are checked against) agree.
    assert set(train.TASKS) == set(data.TASK_METRICS)
    for name, task in train.TASKS.items():
        assert ("loss", *task.metrics) == data.TASK_METRICS[name]
    with pytest.raises(ValueError, match="Unknown task 'segmentation'"):
        _fit_task("segmentation")


def _fit_task(task):
    hp = train.TrainHParams(batch_size=32)
    return train.fit(lambda: mlp.build(mlp.HParams(depth=1, width=4), SPIRALS), SPIRALS, hp, epochs=1, seed=0,
                     monitor="val_loss", task=task)
