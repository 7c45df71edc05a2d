"""The training recipe: optimizer, decoupled weight decay, learning-rate schedule, gradient clipping and the
classifier's loss, built from a run's TrainHParams. Written with keras.optimizers / keras.ops only.

What each switch does, exactly:

- `weight_decay`: Keras applies `w <- w - lr * weight_decay * w` to every kernel once per step, before the
  gradient update (decoupled decay, scaled by the learning rate and its schedule, as PyTorch's AdamW does). With
  `adamw` that is AdamW (Loshchilov & Hutter 2019); with `sgd`, `momentum` or `nesterov` it is SGDW: the decay
  does not go through the momentum (for plain `sgd` it equals an L2 penalty of weight_decay / 2). Biases and batch
  norm's scale and offset are not decayed. Other optimizers take no decoupled decay: use `l2` (a penalty in the
  loss, which adaptive optimizers rescale: Loshchilov & Hutter's point).
- `lr_schedule`: the learning rate at a step, from the epoch it falls in (fractional: step / steps per epoch).
  `step`: times `lr_decay` every `lr_step_epochs` epochs; `exponential`: times `lr_decay` per `lr_step_epochs`
  epochs, smoothly; `cosine`: half a cosine from the rate to 0 over the run's epochs (Loshchilov & Hutter 2017);
  `warmup_cosine`: linear warm-up over `warmup_epochs`, then the cosine over the rest (Goyal et al. 2017);
  `plateau`: times `lr_decay` after `lr_step_epochs` epochs without a better monitored value. `warmup_epochs`
  warms up any schedule but `plateau`. The horizon is the run's own epochs x steps per epoch.
- `clip_norm`: the gradients are rescaled so that their global L2 norm is at most `clip_norm`.
- `loss` (softmax classifiers): `cross_entropy`; `mse`, the squared error between the softmax outputs and the
  one-hot targets summed over classes (the Brier score; Golik et al. 2013's setting); `hinge`, the multi-class
  hinge (Crammer & Singer) on the log-probabilities, which equals the hinge on the logits (it is invariant to
  adding a constant to every class score). `label_smoothing` replaces the one-hot targets by (1 - e) one-hot +
  e / classes for `cross_entropy` and `mse`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

STEP_SCHEDULES = ("step", "exponential")
SCHEDULES = ("constant", "step", "exponential", "cosine", "warmup_cosine", "plateau")
NOT_DECAYED = ("bias", "gamma", "beta")  # variable names Keras gives biases and batch norm's scale and offset
DECOUPLED = ("adamw", "sgd", "momentum", "nesterov")  # optimizers that take `weight_decay`


class Conflict(ValueError):
    """Settings that are each allowed but not together; `field` is the one to change."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check(hp) -> None:
    """Settings that are each allowed but not together; raises Conflict saying what to change."""
    if hp.weight_decay and hp.optimizer not in DECOUPLED:
        raise Conflict("weight_decay", f"weight_decay is decoupled decay, taken by {', '.join(DECOUPLED)}; "
                       f"optimizer = {hp.optimizer!r} takes none: use optimizer = \"adamw\", or l2 for a penalty in "
                       "the loss")
    if hp.lr_schedule in (*STEP_SCHEDULES, "plateau") and hp.lr_step_epochs is None:
        what = "patience (epochs without improvement)" if hp.lr_schedule == "plateau" else "step size in epochs"
        raise Conflict("lr_schedule", f"lr_schedule = {hp.lr_schedule!r} needs lr_step_epochs, its {what}")
    if hp.lr_schedule == "warmup_cosine" and hp.warmup_epochs == 0:
        raise Conflict("lr_schedule", "lr_schedule = \"warmup_cosine\" needs warmup_epochs >= 1 (or use "
                       "lr_schedule = \"cosine\")")
    if hp.lr_schedule == "plateau" and hp.warmup_epochs:
        raise Conflict("warmup_epochs", "warmup_epochs does not combine with lr_schedule = \"plateau\"; use 0")
    if hp.beta_1 != 0.9 and hp.optimizer not in ("adam", "adamw", "nadam"):
        raise Conflict("beta_1", f"beta_1 is the first-moment decay of adam, adamw and nadam; optimizer = "
                       f"{hp.optimizer!r} has none (its momentum is `momentum`)")
    if hp.label_smoothing and hp.loss == "hinge":
        raise Conflict("label_smoothing", "label_smoothing smooths the targets of cross_entropy and mse; "
                       "loss = \"hinge\" has none")


@functools.cache
def _schedule_class():
    """The schedule class, defined on first use so that importing this module does not import Keras."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="dlbench")
    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        """The learning rate of `lr_schedule` at an optimizer step (see the module's docstring)."""

        def __init__(self, rate: float, kind: str, steps_per_epoch: int, epochs: int, warmup_epochs: int = 0,
                     decay: float = 0.1, step_epochs: int | None = None):
            self.rate, self.kind, self.steps_per_epoch, self.epochs = rate, kind, steps_per_epoch, epochs
            self.warmup_epochs, self.decay, self.step_epochs = warmup_epochs, decay, step_epochs

        def __call__(self, step):
            step = ops.cast(step, "float32")
            epoch = step / float(self.steps_per_epoch)
            rate = ops.convert_to_tensor(self.rate, "float32")
            if self.kind == "step":
                rate = rate * ops.power(self.decay, ops.floor(epoch / self.step_epochs))
            elif self.kind == "exponential":
                rate = rate * ops.power(self.decay, epoch / self.step_epochs)
            elif self.kind in ("cosine", "warmup_cosine"):
                span = max(self.epochs - self.warmup_epochs, 1e-9)
                progress = ops.clip((epoch - self.warmup_epochs) / span, 0.0, 1.0)
                rate = rate * 0.5 * (1.0 + ops.cos(math.pi * progress))
            if self.warmup_epochs:
                warm = (step + 1.0) / float(self.warmup_epochs * self.steps_per_epoch)
                rate = rate * ops.minimum(warm, 1.0)
            return rate

        def get_config(self):
            return {"rate": self.rate, "kind": self.kind, "steps_per_epoch": self.steps_per_epoch,
                    "epochs": self.epochs, "warmup_epochs": self.warmup_epochs, "decay": self.decay,
                    "step_epochs": self.step_epochs}

    return Schedule


def learning_rate(hp, steps_per_epoch: int, epochs: int):
    """The optimizer's learning rate: a float (constant without warm-up, or plateau: Keras then keeps it in a
    variable the plateau callback lowers and checkpoints keep) or a schedule of the step."""
    if hp.lr_schedule in ("constant", "plateau") and not hp.warmup_epochs:
        return hp.learning_rate
    return _schedule_class()(hp.learning_rate, hp.lr_schedule, max(1, steps_per_epoch), epochs, hp.warmup_epochs,
                     hp.lr_decay, hp.lr_step_epochs)


def optimizer(hp, steps_per_epoch: int = 1, epochs: int = 1):
    """The Keras optimizer of `hp`, its learning rate scheduled over `epochs` of `steps_per_epoch` steps."""
    import keras

    rate = learning_rate(hp, steps_per_epoch, epochs)
    common: dict[str, Any] = {"global_clipnorm": hp.clip_norm} if hp.clip_norm else {}
    if hp.weight_decay:
        common["weight_decay"] = hp.weight_decay
    table = {
        "sgd": lambda: keras.optimizers.SGD(rate, **common),
        "momentum": lambda: keras.optimizers.SGD(rate, momentum=hp.momentum, **common),
        "nesterov": lambda: keras.optimizers.SGD(rate, momentum=hp.momentum, nesterov=True, **common),
        "adam": lambda: keras.optimizers.Adam(rate, beta_1=hp.beta_1, **common),
        "adamw": lambda: keras.optimizers.AdamW(rate, beta_1=hp.beta_1, **{"weight_decay": 0.0, **common}),
        "nadam": lambda: keras.optimizers.Nadam(rate, beta_1=hp.beta_1, **common),
        "rmsprop": lambda: keras.optimizers.RMSprop(rate, **common),
        "adagrad": lambda: keras.optimizers.Adagrad(rate, **common),
        "adadelta": lambda: keras.optimizers.Adadelta(rate, **common),
    }
    if hp.optimizer not in table:
        raise ValueError(f"Unknown optimizer {hp.optimizer!r}; known: {', '.join(table)}")
    opt = table[hp.optimizer]()
    if hp.weight_decay:
        opt.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
    return opt


def callbacks(hp, monitor: str, mode: str) -> list:
    """Keras callbacks the recipe needs: the plateau schedule's."""
    import keras

    if hp.lr_schedule != "plateau":
        return []
    return [keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=hp.lr_decay, patience=hp.lr_step_epochs,
                                              mode="min" if mode == "minimize" else "max", min_lr=0.0, verbose=0)]


def current_rate(opt) -> float:
    """The learning rate the optimizer applies at its current step."""
    from keras import ops

    return float(ops.convert_to_numpy(opt.learning_rate))


def classifier_loss(hp):
    """The loss of a softmax classifier: None for plain cross-entropy (the task's default), else a Keras loss."""
    if hp.loss == "cross_entropy" and not hp.label_smoothing:
        return None
    from dlbench.models.losses import ClassifierLoss

    return ClassifierLoss(kind=hp.loss, label_smoothing=hp.label_smoothing)
