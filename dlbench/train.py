"""Training: compile, fit and evaluate one Keras model. Knows nothing of Optuna or MLflow: their hooks come in."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Annotated, Any, Callable, Literal, Sequence

import pydantic

Optimizer = Literal["sgd", "momentum", "nesterov", "adam", "rmsprop", "adagrad"]
EpochHook = Callable[[int, dict[str, float]], None]


@dataclasses.dataclass(frozen=True)
class TrainHParams:
    optimizer: Optimizer = "adam"
    learning_rate: Annotated[float, pydantic.Field(gt=0.0)] = 1e-3
    momentum: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.9  # used by momentum and nesterov only
    batch_size: Annotated[int, pydantic.Field(ge=1)] = 32


@dataclasses.dataclass(frozen=True)
class Task:
    """What a model is fitted to, its default Keras loss and the metrics it logs besides `loss`."""

    targets: Literal["labels", "inputs"]
    loss: str
    metrics: tuple[str, ...]


# One per key of data.TASK_METRICS (which names the log keys a spec may use; a test keeps the two in step).
TASKS = {
    "classification": Task("labels", "sparse_categorical_crossentropy", ("accuracy",)),
    # The reconstruction error is the MSE whatever the training loss, so models trained with cross-entropy and
    # with MSE (and PCA) are compared on one scale.
    "reconstruction": Task("inputs", "mse", ("reconstruction_error",)),
}


def _metric(name: str):
    import keras

    if name == "reconstruction_error":
        return keras.metrics.MeanSquaredError(name="reconstruction_error")
    return name


# Batches per compiled call: small models spend a tenth of their time in Keras's per-step Python loop at 1
# (bench/CHANGES.md). Callbacks run per epoch only, so nothing observes the difference; results are identical.
STEPS_PER_EXECUTION = 32


class Diverged(RuntimeError):
    """Training produced a non-finite loss; the run is recorded as failed (the study goes on)."""

    def __init__(self, epoch: int, logs: dict[str, float]):
        self.epoch = epoch
        self.logs = logs
        super().__init__(f"diverged: non-finite loss at epoch {epoch} ({logs})")


@dataclasses.dataclass
class FitResult:
    history: dict[str, list[float]]
    best_epoch: int  # 0-based
    best_value: float
    test: dict[str, float]  # `test_<key>` -> value, empty unless asked for
    seconds: float
    params_count: int
    flops_per_example: int = 0  # estimated forward-pass FLOPs (2 per multiply-add), models.cost
    examples_per_second: float = 0.0  # training throughput: examples seen in all epochs / training seconds

    def metrics(self, monitor: str) -> dict[str, float]:
        """What a finished run logs to MLflow besides its per-epoch history."""
        return {**self.test, f"best_{monitor}": self.best_value, "best_epoch": self.best_epoch,
                "train_seconds": self.seconds, "params_count": self.params_count,
                "flops_per_example": self.flops_per_example, "examples_per_second": self.examples_per_second}


def direction(metric: str) -> str:
    """'minimize' for losses and errors, 'maximize' for everything else (accuracy, AUC, ...)."""
    return "minimize" if ("loss" in metric or "error" in metric) else "maximize"


def configure(threads: int | None = None, deterministic: bool = True) -> None:
    """Process-wide backend settings; call before the first model is built."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
            except RuntimeError:  # the runtime is already initialised: keep its settings
                pass
        if deterministic:
            tf.config.experimental.enable_op_determinism()


def device() -> str:
    """The accelerator the backend trains on, e.g. 'GPU:NVIDIA H100' or 'CPU'."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"GPU:{details.get('device_name', gpus[0].name)} x{len(gpus)}"
        return "CPU"
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        return f"{d.platform.upper()}:{getattr(d, 'device_kind', '')}"
    return backend


def optimizer(hp: TrainHParams):
    import keras

    if hp.optimizer == "sgd":
        return keras.optimizers.SGD(hp.learning_rate)
    if hp.optimizer == "momentum":
        return keras.optimizers.SGD(hp.learning_rate, momentum=hp.momentum)
    if hp.optimizer == "nesterov":
        return keras.optimizers.SGD(hp.learning_rate, momentum=hp.momentum, nesterov=True)
    if hp.optimizer == "adam":
        return keras.optimizers.Adam(hp.learning_rate)
    if hp.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(hp.learning_rate)
    if hp.optimizer == "adagrad":
        return keras.optimizers.Adagrad(hp.learning_rate)
    raise ValueError(f"Unknown optimizer {hp.optimizer!r}")


def fit(build: Callable[[], Any], data, hp: TrainHParams, *, epochs: int, seed: int, monitor: str,
        hooks: Sequence[EpochHook] = (), evaluate_test: bool = False, task: str = "classification",
        loss: str | Any | None = None) -> FitResult:
    """Seed, build, compile, train and (optionally) test one model.

    Seed `seed` fixes both the initial weights and the order of training examples, so the same seed gives the
    same data order in every arm. The weights of the best epoch by `monitor` are restored before testing.

    Args:
        build: returns an uncompiled keras.Model (called after seeding).
        data: a DatasetInfo.
        hp: optimiser and batch settings.
        epochs: number of passes over the training split.
        seed: run seed.
        monitor: the Keras log key that selects the best epoch (e.g. 'val_accuracy').
        hooks: called as hook(epoch, logs) after every epoch, in order (logging, pruning). May raise to stop.
        evaluate_test: also evaluate the restored model on the test split.
        task: a key of TASKS: "classification" fits the labels, "reconstruction" the inputs themselves.
        loss: the Keras loss (a name or a keras.losses.Loss, e.g. the perceptron's hinge); None takes the
            task's default.

    Returns:
        FitResult with the per-epoch history.

    Raises:
        Diverged: the training loss became NaN or infinite.
    """
    import keras

    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    objective = TASKS[task]
    target = (lambda split: split.y) if objective.targets == "labels" else (lambda split: split.x)
    keras.utils.set_random_seed(seed)
    model = build()
    model.compile(optimizer=optimizer(hp), loss=loss or objective.loss,
                  metrics=[_metric(m) for m in objective.metrics], steps_per_execution=STEPS_PER_EXECUTION)

    mode = direction(monitor)
    history: dict[str, list[float]] = {}
    best = {"epoch": -1, "value": math.inf if mode == "minimize" else -math.inf, "weights": None}

    def on_epoch_end(epoch: int, logs: dict | None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        if monitor not in logs:
            raise KeyError(f"metric {monitor!r} is not produced; this run logs: {', '.join(sorted(logs))}")
        value = logs[monitor]
        if math.isfinite(value) and (value < best["value"] if mode == "minimize" else value > best["value"]):
            best.update(epoch=epoch, value=value, weights=model.get_weights())
        for hook in hooks:
            hook(epoch, logs)
        if not math.isfinite(logs.get("loss", 0.0)):
            raise Diverged(epoch, logs)

    # Re-seed after building so the shuffling order depends on the seed only, not on the architecture.
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model.fit(
        data.train.x, target(data.train), batch_size=hp.batch_size, epochs=epochs, shuffle=True, verbose=0,
        validation_data=(data.val.x, target(data.val)), validation_batch_size=max(hp.batch_size, 1024),
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)],
    )
    seconds = time.perf_counter() - start
    if best["weights"] is None:
        raise Diverged(epochs - 1, {k: v[-1] for k, v in history.items()})

    test: dict[str, float] = {}
    if evaluate_test:
        model.set_weights(best["weights"])
        scores = model.evaluate(data.test.x, target(data.test), batch_size=max(hp.batch_size, 1024), verbose=0,
                                return_dict=True)
        test = {f"test_{k}": float(v) for k, v in scores.items()}
    from dlbench.models.cost import flops_per_example

    seen = len(data.train) * len(history.get("loss", ()))
    return FitResult(history, int(best["epoch"]), float(best["value"]), test, seconds, int(model.count_params()),
                     flops_per_example(model), seen / seconds if seconds > 0 else 0.0)


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))
