"""The training recipe, checked by value: optimizers and decoupled decay, the learning rate of every schedule at
given steps, clipping, the classifier losses, early stopping, `select`, gradient norms and noisy labels."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from dlbench import data, gradnorms, recipe, train
from dlbench.models import losses, mlp
from dlbench.train import TrainHParams

SPIRALS = data.load("spirals", {"n": 300})


@pytest.mark.parametrize("name, cls", [
    ("sgd", keras.optimizers.SGD), ("momentum", keras.optimizers.SGD), ("nesterov", keras.optimizers.SGD),
    ("adam", keras.optimizers.Adam), ("adamw", keras.optimizers.AdamW), ("nadam", keras.optimizers.Nadam),
    ("rmsprop", keras.optimizers.RMSprop), ("adagrad", keras.optimizers.Adagrad),
    ("adadelta", keras.optimizers.Adadelta),
])
def test_each_optimizer_is_its_keras_class(name, cls):
    opt = recipe.optimizer(TrainHParams(optimizer=name, learning_rate=0.01))
    assert type(opt) is cls and float(opt.learning_rate) == pytest.approx(0.01)
    if cls is keras.optimizers.SGD:
        assert (opt.momentum, opt.nesterov) == {"sgd": (0.0, False), "momentum": (0.9, False),
                                                "nesterov": (0.9, True)}[name]


@pytest.mark.parametrize("name", ["adamw", "sgd", "momentum"])
def test_weight_decay_shrinks_kernels_by_lr_times_decay_and_spares_biases(name):
    layer = keras.layers.Dense(3, kernel_initializer="ones", bias_initializer="ones")
    layer.build((None, 2))
    opt = recipe.optimizer(TrainHParams(optimizer=name, learning_rate=0.1, weight_decay=0.5))
    assert opt.weight_decay == 0.5
    zeros = [np.zeros(v.shape, "float32") for v in layer.trainable_variables]
    opt.apply_gradients(zip(zeros, layer.trainable_variables))
    assert np.allclose(layer.kernel.numpy(), 1 - 0.1 * 0.5)  # w <- w - lr * wd * w
    assert np.allclose(layer.bias.numpy(), 1.0)


def test_adam_with_weight_decay_is_refused_for_adamw_or_l2():
    with pytest.raises(ValueError, match="use optimizer = \"adamw\", or l2"):
        TrainHParams(optimizer="adam", weight_decay=1e-4)


def close(expected, **kw):
    return pytest.approx(expected, rel=1e-5, abs=1e-7, **kw)


def _rates(**kw) -> list[float]:
    """The learning rate at the first step of epochs 0..9 (10 steps per epoch, 10 epochs)."""
    schedule = recipe.learning_rate(TrainHParams(learning_rate=1.0, **kw), steps_per_epoch=10, epochs=10)
    return [float(schedule(10 * e)) if callable(schedule) else schedule for e in range(10)]


def test_every_schedule_gives_its_learning_rate_at_given_steps():
    assert _rates() == [1.0] * 10
    assert _rates(lr_schedule="step", lr_step_epochs=3, lr_decay=0.5) == close(
        [1, 1, 1, .5, .5, .5, .25, .25, .25, .125])
    assert _rates(lr_schedule="exponential", lr_step_epochs=2, lr_decay=0.25) == close(
        [0.5 ** e for e in range(10)])  # 0.25 per 2 epochs = 0.5 per epoch, smoothly
    assert _rates(lr_schedule="cosine") == close([0.5 * (1 + math.cos(math.pi * e / 10)) for e in range(10)])
    warm = _rates(lr_schedule="warmup_cosine", warmup_epochs=2)
    assert warm[:2] == close([1 / 20, 11 / 20])  # (step + 1) / warm-up steps
    assert warm[2:] == close([0.5 * (1 + math.cos(math.pi * (e - 2) / 8)) for e in range(2, 10)])
    schedule = recipe.learning_rate(TrainHParams(learning_rate=1.0, lr_schedule="cosine"), 10, 10)
    assert float(schedule(100)) == close(0.0)  # the horizon is the run's own epochs x steps
    assert _rates(lr_schedule="plateau", lr_step_epochs=2) == [1.0] * 10  # lowered by its callback instead
    (plateau,) = recipe.callbacks(TrainHParams(lr_schedule="plateau", lr_step_epochs=4, lr_decay=0.3),
                                  "val_accuracy", "maximize")
    assert (type(plateau), plateau.factor, plateau.patience, plateau.mode) == (
        keras.callbacks.ReduceLROnPlateau, 0.3, 4, "max")


def test_clip_norm_bounds_the_global_gradient_norm():
    layer = keras.layers.Dense(2, kernel_initializer="zeros", use_bias=False)
    layer.build((None, 2))
    opt = recipe.optimizer(TrainHParams(optimizer="sgd", learning_rate=1.0, clip_norm=1.0))
    assert opt.global_clipnorm == 1.0
    opt.apply_gradients([(np.full((2, 2), 100.0, "float32"), layer.kernel)])
    assert np.linalg.norm(layer.kernel.numpy()) == pytest.approx(1.0, rel=1e-5)


def test_the_classifier_losses_by_value():
    labels = np.array([0, 2])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], "float32")

    def loss(kind, smoothing=0.0):
        return keras.ops.convert_to_numpy(losses.ClassifierLoss(kind, smoothing).call(labels, p))

    assert loss("cross_entropy") == pytest.approx(-np.log([0.7, 0.6]), rel=1e-5)
    t = np.array([[0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3], [0.1 / 3, 0.1 / 3, 0.9 + 0.1 / 3]])
    assert loss("cross_entropy", 0.1) == pytest.approx(-(t * np.log(p)).sum(1), rel=1e-5)
    one_hot = np.eye(3)[labels]
    assert loss("mse") == pytest.approx(((one_hot - p) ** 2).sum(1), rel=1e-5)
    # The hinge on log-probabilities is the hinge on any logits that give them.
    logits = np.log(p) + np.array([[3.0], [-1.0]], "float32")
    direct = keras.ops.convert_to_numpy(losses.multiclass_hinge(labels, logits))
    assert loss("hinge") == pytest.approx(direct, rel=1e-5)
    assert recipe.classifier_loss(TrainHParams()) is None  # plain cross-entropy: Keras's own, as before
    assert recipe.classifier_loss(TrainHParams(loss="mse")).kind == "mse"


def test_early_stopping_stops_patience_epochs_after_the_best():
    scripted = [0.5, 0.6, 0.7, 0.65, 0.69, 0.7, 0.68]  # best at epoch 2; ties do not count as better
    stops = [train.stops_early(scripted[:e + 1], best_epoch=min(e, 2), patience=3) for e in range(len(scripted))]
    assert stops == [False, False, False, False, False, True, True]  # 3 epochs after epoch 2: stop after epoch 5
    assert not any(train.stops_early(scripted[:e + 1], 2, patience=0) for e in range(len(scripted)))


def _fit(hp: TrainHParams, epochs: int = 8, hooks=()):
    return train.fit(lambda: mlp.build(mlp.HParams(depth=2, width=16), SPIRALS), SPIRALS, hp, epochs=epochs, seed=3,
                     monitor="val_accuracy", hooks=hooks)


def test_early_stopping_ends_the_run_and_select_last_tests_the_last_epoch():
    # A learning rate of 0 never improves on epoch 0: patience 2 stops after epoch 2.
    stopped = _fit(TrainHParams(optimizer="sgd", learning_rate=1e-12, early_stopping=2, grad_norm_every=0))
    assert stopped.epochs_trained == 3 and stopped.metrics("val_accuracy")["epochs_trained"] == 3
    last = _fit(TrainHParams(learning_rate=0.05, select="last", grad_norm_every=0), epochs=5)
    assert last.best_epoch == 4 and last.best_value == last.history["val_accuracy"][-1]


def test_gradient_norms_are_logged_per_layer_and_change_nothing_trained():
    seen: list[dict] = []
    with_norms = _fit(TrainHParams(learning_rate=0.05, grad_norm_every=2), epochs=4,
                      hooks=[lambda epoch, logs: seen.append(logs)])
    without = _fit(TrainHParams(learning_rate=0.05, grad_norm_every=0), epochs=4)
    assert with_norms.history == without.history
    keys = [sorted(k for k in logs if k.startswith("grad_norm/")) for logs in seen]
    layers = sorted(f"grad_norm/{gradnorms.layer_of(v.path)}" for v in with_norms.model.trainable_variables)
    assert keys[0] == sorted(set(layers)) and keys[1] == keys[0] and keys[2] == [] and keys[3] == keys[0]
    assert all(seen[0][k] > 0 for k in keys[0])
    assert "grad_norm/dense_0" not in with_norms.history  # logged, not part of the history
    assert [round(v, 6) for v in with_norms.history["learning_rate"]] == [0.05] * 4


def test_label_noise_corrupts_only_the_training_labels_by_the_fraction():
    clean, noisy = data.load("digits", {}), data.load("digits", {"label_noise": 0.2})
    wrong = noisy.train.y != clean.train.y
    assert wrong.sum() == round(0.2 * len(clean.train))  # exactly that fraction, each to another class
    assert np.array_equal(noisy.val.y, clean.val.y) and np.array_equal(noisy.test.y, clean.test.y)
    assert np.array_equal(noisy.train.x, clean.train.x)
    assert np.array_equal(data.load("digits", {"label_noise": 0.2}).train.y, noisy.train.y)  # fixed by split_seed


def test_auto_gradient_norms_stay_under_five_percent_of_an_epoch():
    assert [gradnorms.every("auto", rows) for rows in (1197, 3000, 5120, 45000)] == [5, 2, 1, 1]
    assert gradnorms.every(3, 1197) == 3 and gradnorms.every(0, 45000) == 0
    assert [e for e in range(10) if gradnorms.due(e, 5)] == [0, 4, 9]  # the first, then every 5th
