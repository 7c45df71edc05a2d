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


def test_mse_metrics_are_lower_is_better_wherever_they_are_logged():
    # Regression's `mse` is minimised like a loss, under every prefix a spec or a report uses.
    for key in ("mse", "val_mse", "test_mse", "best_val_mse", "val_reconstruction_error"):
        assert train.direction(key) == "minimize", key
    assert train.direction("val_sequence_accuracy") == "maximize"


def _tagging_batch():
    import numpy as np

    # 2 examples x 3 positions x 2 classes; -1 marks a position without a target.
    y_true = np.array([[0, 1, -1], [1, -1, -1]], dtype="int32")
    y_pred = np.array([[[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]],  # both targeted positions right
                       [[0.7, 0.3], [0.1, 0.9], [0.5, 0.5]]], dtype="float32")  # its one target wrong
    return y_true, y_pred


def test_masked_cross_entropy_averages_over_the_targeted_positions_of_each_example():
    import numpy as np
    from keras import ops

    from dlbench.models.losses import masked_sparse_categorical_crossentropy

    y_true, y_pred = _tagging_batch()
    got = ops.convert_to_numpy(masked_sparse_categorical_crossentropy(y_true, y_pred))
    expected = [(-math.log(0.9) - math.log(0.8)) / 2, -math.log(0.3)]  # ignored positions count nowhere
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_tagging_accuracies_count_targeted_positions_and_whole_sequences():
    from keras import ops

    from dlbench.models.losses import TaggingAccuracy

    y_true, y_pred = _tagging_batch()
    tokens, sequences = TaggingAccuracy(), TaggingAccuracy(name="sequence_accuracy", whole_sequence=True)
    for metric in (tokens, sequences):
        metric.update_state(y_true, y_pred)
        metric.update_state(y_true[:1], y_pred[:1])  # pooled over batches: 2 more right positions, 1 more sequence
    assert float(ops.convert_to_numpy(tokens.result())) == pytest.approx(4 / 5)
    assert float(ops.convert_to_numpy(sequences.result())) == pytest.approx(2 / 3)
    tokens.reset_state()
    assert float(ops.convert_to_numpy(tokens.result())) == 0.0


def _sequence_info(task, y):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((64, 5, 2)).astype("float32")
    split = data.Split(x, y)
    return data.DatasetInfo("toy", task, (5, 2), 0 if task == "regression" else 3, split, split, split)


def _per_position_model(info):
    import keras

    inputs = keras.Input((5, 2))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    if info.task == "regression":
        x = keras.layers.Flatten()(x)
    from dlbench.models import blocks

    return keras.Model(inputs, blocks.output_head(x, info, blocks.Switches()))


@pytest.mark.parametrize("task", ["regression", "tagging"])
def test_regression_and_tagging_tasks_fit_and_log_their_own_metrics(task):
    import numpy as np

    rng = np.random.default_rng(1)
    if task == "regression":  # the target: the sum of the first feature over time
        x = rng.random((64, 5, 2)).astype("float32")
        info = _sequence_info(task, x[:, :, :1].sum(axis=1))
        info = data.DatasetInfo("toy", task, (5, 2), 0, *(data.Split(x, info.train.y),) * 3)
    else:  # the target at each of the last 2 positions: whether its first feature exceeds 0.5
        info = _sequence_info(task, np.zeros((64, 5), "int32"))
        y = (info.train.x[:, :, 0] > 0.5).astype("int32")
        y[:, :3] = -1
        info = data.DatasetInfo("toy", task, (5, 2), 3, *(data.Split(info.train.x, y),) * 3)
    metric = "val_mse" if task == "regression" else "val_accuracy"
    r = train.fit(lambda: _per_position_model(info), info, train.TrainHParams(learning_rate=0.02), epochs=15,
                  seed=0, monitor=metric, task=task, evaluate_test=True)
    assert info.outputs == (1 if task == "regression" else 3)
    expected = {"regression": {"test_loss", "test_mse"},
                "tagging": {"test_loss", "test_accuracy", "test_sequence_accuracy"}}[task]
    assert set(r.test) == expected
    if task == "regression":
        assert r.history["val_mse"][-1] < r.history["val_mse"][0]
        assert r.best_value == min(r.history["val_mse"])
    else:  # a per-position threshold is learnable: well above the 1/2 of guessing
        assert r.test["test_accuracy"] > 0.8
        assert r.test["test_sequence_accuracy"] <= r.test["test_accuracy"]
