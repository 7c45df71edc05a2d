"""Training: compile, fit and evaluate one Keras model. Knows nothing of Optuna or MLflow: their hooks come in."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Annotated, Any, Callable, Literal, Sequence

import pydantic

from dlbench import gradnorms, recipe, runtime

Optimizer = Literal["sgd", "momentum", "nesterov", "adam", "adamw", "nadam", "rmsprop", "adagrad", "adadelta"]
Schedule = Literal["constant", "step", "exponential", "cosine", "warmup_cosine", "plateau"]
NonNegative = Annotated[float, pydantic.Field(ge=0.0)]
Precision = Literal["float32", "mixed_float16", "mixed_bfloat16"]
EpochHook = Callable[[int, dict[str, float]], None]
# Epochs between checkpoints by default: bench/overhead.py measures the cost (goal: under 2% of a trial).
CHECKPOINT_EVERY = 5


@dataclasses.dataclass(frozen=True)
class TrainHParams:
    optimizer: Optimizer = "adam"
    learning_rate: Annotated[float, pydantic.Field(gt=0.0)] = 1e-3
    momentum: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.9  # used by momentum and nesterov only
    beta_1: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.9  # adam, adamw, nadam: first-moment decay
    batch_size: Annotated[int, pydantic.Field(ge=1)] = 32
    # === Training recipe (dlbench.recipe says exactly what each does) ===
    weight_decay: NonNegative = 0.0  # decoupled decay: adamw, and SGDW for sgd/momentum/nesterov
    lr_schedule: Schedule = "constant"
    warmup_epochs: Annotated[int, pydantic.Field(ge=0)] = 0  # linear warm-up (any schedule but plateau)
    lr_decay: Annotated[float, pydantic.Field(gt=0.0, le=1.0)] = 0.1  # factor of step, exponential, plateau
    lr_step_epochs: Annotated[int, pydantic.Field(ge=1)] | None = None  # step size; plateau's patience
    clip_norm: NonNegative = 0.0  # 0 = off, else the largest global gradient norm
    label_smoothing: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.0
    loss: Literal["cross_entropy", "mse", "hinge"] = "cross_entropy"  # softmax classifiers
    early_stopping: Annotated[int, pydantic.Field(ge=0)] = 0  # 0 = off, else patience in epochs
    select: Literal["best", "last"] = "best"  # the weights tested: the best validation epoch's, or the last
    # Epochs between grad_norm/<layer> logs; 0 = none; "auto": at most 5% extra compute (dlbench.gradnorms.every)
    grad_norm_every: Literal["auto"] | Annotated[int, pydantic.Field(ge=0)] = "auto"
    # === Speed settings (part of the spec hash like every parameter) ===
    precision: Precision = "float32"  # a Keras dtype policy; output layers stay float32
    jit_compile: Literal["auto"] | bool = "auto"  # XLA; "auto" is Keras's choice
    deterministic: bool = True  # op determinism (TensorFlow: tf.config.experimental.enable_op_determinism)
    checkpoint_every: Annotated[int, pydantic.Field(ge=0)] = CHECKPOINT_EVERY  # epochs; 0 = no checkpoints
    # === Post-training quantization of each seed repeat's trained model (dlbench.quantize); training unchanged ===
    quantize: Literal["none", "float16", "int8"] = "none"
    quantize_granularity: Literal["per_channel", "per_tensor"] = "per_channel"
    # === Transfer (dlbench.transfer applies them when the model is built) ===
    freeze: Literal["none", "all_but_head"] | Annotated[int, pydantic.Field(ge=0)] = "none"  # leading blocks kept fixed
    init_from: str | None = None  # initial weights: the best repeat of an arm, "<arm>" or "<experiment>/<arm>"

    def __post_init__(self):
        recipe.check(self)


@dataclasses.dataclass
class TrainState:
    """Where training stands after `epoch` (0-based, finished): what a checkpoint holds and a resume starts from."""

    epoch: int
    history: dict[str, list[float]]
    best_epoch: int
    best_value: float
    weights: list
    best_weights: list | None
    optimizer: list  # the optimizer's variables (iterations, slots), in its own order


@dataclasses.dataclass(frozen=True)
class Task:
    """What a model is fitted to, its default Keras loss and the metrics it logs besides `loss`."""

    targets: Literal["labels", "inputs"]
    loss: str
    metrics: tuple[str, ...]


# One per key of data.TASK_METRICS (which names the log keys a spec may use and says how each is computed; a test
# keeps the two in step).
TASKS = {
    "classification": Task("labels", "sparse_categorical_crossentropy", ("accuracy",)),
    # The reconstruction error is the MSE whatever the training loss, so models trained with cross-entropy and
    # with MSE (and PCA) are compared on one scale.
    "reconstruction": Task("inputs", "mse", ("reconstruction_error",)),
    # One label per position; positions whose target is data.IGNORE count in neither the loss nor the metrics.
    "tagging": Task("labels", "masked_sparse_categorical_crossentropy", ("accuracy", "sequence_accuracy")),
    "regression": Task("labels", "mse", ("mse",)),
    # A generative model (models/vae.py): fitted to its inputs on the negative ELBO; its loss function carries the
    # metrics (`task_metrics`), which depend on the model's likelihood.
    "generative": Task("inputs", "negative_elbo", ("elbo", "reconstruction", "kl")),
    # A GAN (models/gan.py): its own train step fits the inputs and logs these itself (models/adversarial.py; its
    # compile takes no loss or metrics); the quality of its samples comes from the model's `evaluate` hook (`fit`).
    "adversarial": Task("inputs", "", ("d_loss", "g_loss", "d_real", "d_fake")),
}


def _metric(name: str, task: str, loss: Any = None):
    import keras

    if task == "generative":  # plain functions of (inputs, output) that the model's loss function provides
        return keras.metrics.MeanMetricWrapper(_generative_loss(loss).task_metrics[name], name=name)
    if name in ("reconstruction_error", "mse"):
        return keras.metrics.MeanSquaredError(name=name)
    if task == "tagging":
        from dlbench.models.losses import TaggingAccuracy

        return TaggingAccuracy(name=name, whole_sequence=name == "sequence_accuracy")
    return name


def _generative_loss(loss: Any):
    """A generative task's loss: the model's own (with its `task_metrics`), else the VAE's Bernoulli negative ELBO."""
    if loss is not None and hasattr(loss, "task_metrics"):
        return loss
    from dlbench.models import vae

    return vae.loss(vae.HParams())


def _task_loss(task: str):
    """The Keras loss of a task: a Keras name, or for tagging the masked cross-entropy."""
    if task == "generative":
        return _generative_loss(None)
    if task == "adversarial":
        return None
    if task == "tagging":
        from dlbench.models.losses import masked_sparse_categorical_crossentropy

        return masked_sparse_categorical_crossentropy
    return TASKS[task].loss


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
    examples_per_second: float = 0.0  # training throughput: examples seen in this process / training seconds
    settings: dict[str, str] = dataclasses.field(default_factory=dict)  # precision, determinism, jit_compile in force
    model: Any = dataclasses.field(default=None, repr=False)  # the trained model (best weights if tested)
    epochs_trained: int = 0  # fewer than the budget when early stopping stopped the run

    def objective(self, metric: str, monitor: str) -> float:
        """A trial's value of one objective of a search: the monitored metric's best, another logged metric at
        the selected epoch, or a cost (COST_METRICS)."""
        if metric == monitor:
            return self.best_value
        if metric in COST_METRICS:
            return float(self.metrics(monitor)[metric])
        values = self.history.get(metric) or [math.nan]
        return float(values[min(self.best_epoch, len(values) - 1)]) if self.best_epoch >= 0 else math.nan

    def metrics(self, monitor: str) -> dict[str, float]:
        """What a finished run logs to MLflow besides its per-epoch history. `best_<monitor>` and `best_epoch`
        are those of the selected weights (`select`: the best validation epoch, or the last)."""
        return {**self.test, f"best_{monitor}": self.best_value, "best_epoch": self.best_epoch,
                "epochs_trained": self.epochs_trained,
                "train_seconds": self.seconds, "params_count": self.params_count,
                "flops_per_example": self.flops_per_example, "examples_per_second": self.examples_per_second}


def stops_early(values: Sequence[float], best_epoch: int, patience: int) -> bool:
    """Whether early stopping ends training after the last of `values` (the monitored metric, one per epoch,
    0-based `best_epoch` the best of them, -1 if none is finite): `patience` epochs have passed without a better
    one (0 = never stop)."""
    return bool(patience) and len(values) - 1 - best_epoch >= patience


# Log keys that are lower-is-better besides those naming a loss or an error: squared errors, and the costs a
# multi-objective search may trade against accuracy (COST_METRICS but throughput).
_LOWER_IS_BETTER = ("mse", "reconstruction", "kl", "fid", "params_count", "flops_per_example", "train_seconds")
# What every finished trial measures besides its task's metrics (FitResult.metrics); a multi-objective search may
# name them in `metrics`.
COST_METRICS = ("params_count", "flops_per_example", "train_seconds", "examples_per_second")


def direction(metric: str) -> str:
    """'minimize' for losses, errors and squared errors, 'maximize' for everything else (accuracy, AUC, ...)."""
    base = metric
    for prefix in ("best_", "test_", "val_"):
        base = base.removeprefix(prefix)
    return "minimize" if ("loss" in metric or "error" in metric or base in _LOWER_IS_BETTER) else "maximize"


def fit(build: Callable[[], Any], data, hp: TrainHParams, *, epochs: int, seed: int, monitor: str,
        hooks: Sequence[EpochHook] = (), evaluate_test: bool = False, task: str = "classification",
        loss: str | Any | None = None, resume: TrainState | None = None,
        checkpoint: Callable[[TrainState], None] | None = None,
        evaluate: Callable[[Any, str], dict[str, float]] | None = None) -> FitResult:
    """Seed, build, compile, train and (optionally) test one model.

    Seed `seed` fixes both the initial weights and the order of training examples, so the same seed gives the
    same data order in every arm. The weights of the best epoch by `monitor` are restored before testing.

    Args:
        build: returns an uncompiled keras.Model (called after seeding, under the precision policy).
        data: a DatasetInfo.
        hp: optimiser, batch and speed settings.
        epochs: number of passes over the training split.
        seed: run seed.
        monitor: the Keras log key that selects the best epoch (e.g. 'val_accuracy').
        hooks: called as hook(epoch, logs) after every epoch, in order (logging, pruning). May raise to stop.
        evaluate_test: also evaluate the restored model on the test split.
        task: a key of TASKS: "classification", "tagging" and "regression" fit the labels (data.TASK_METRICS
            says how each is scored), "reconstruction" the inputs themselves.
        loss: the Keras loss (a name or a keras.losses.Loss, e.g. the perceptron's hinge); None takes the
            task's default.
        resume: a checkpointed state to continue from (weights, optimizer, history, best so far); training goes
            on at the epoch after it, with the shuffling re-seeded from `seed` and that epoch (so a resumed run is
            not bit-identical to an uninterrupted one).
        checkpoint: called with the state after every `hp.checkpoint_every` epochs (not after the last).
        evaluate: (model, "val" or "test") -> metrics the model's own outputs do not give (a GAN's sample
            quality), computed after every epoch as `val_<name>` and on testing as `test_<name>`.

    Returns:
        FitResult with the per-epoch history (the resumed part included) and the settings in force.

    Raises:
        Diverged: the training loss became NaN or infinite.
    """
    import keras

    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    objective = TASKS[task]
    target = (lambda split: split.y) if objective.targets == "labels" else (lambda split: split.x)
    deterministic = runtime.set_determinism(hp.deterministic)
    keras.utils.set_random_seed(seed)
    with runtime.precision(hp.precision):
        model = runtime.float32_outputs(build())
    if loss is None and task == "classification":
        loss = recipe.classifier_loss(hp)
    steps = math.ceil(len(data.train) / hp.batch_size)
    model.compile(optimizer=recipe.optimizer(hp, steps, epochs), loss=loss or _task_loss(task),
                  jit_compile=hp.jit_compile,
                  metrics=[_metric(m, task, loss) for m in objective.metrics], steps_per_execution=STEPS_PER_EXECUTION)
    norm_every = gradnorms.every(hp.grad_norm_every, len(data.train)) if task != "adversarial" else 0
    norms = gradnorms.Sampler(model, data.train.x, target(data.train), seed) if norm_every else None
    settings = {"precision": hp.precision, "determinism": "on" if deterministic else "off",
                "jit_compile": str(bool(model.jit_compile)).lower()}

    mode = direction(monitor)
    history: dict[str, list[float]] = {}
    best = {"epoch": -1, "value": math.inf if mode == "minimize" else -math.inf, "weights": None}
    first = 0
    if resume is not None:
        model.set_weights(resume.weights)
        model.optimizer.build(model.trainable_variables)
        for variable, value in zip(model.optimizer.variables, resume.optimizer, strict=True):
            variable.assign(value)
        history = {k: list(v) for k, v in resume.history.items()}
        best.update(epoch=resume.best_epoch, value=resume.best_value, weights=resume.best_weights)
        first = resume.epoch + 1

    def state(epoch: int) -> TrainState:
        return TrainState(epoch, {k: list(v) for k, v in history.items()}, int(best["epoch"]), float(best["value"]),
                          model.get_weights(),
                          best["weights"], [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables])

    def on_epoch_end(epoch: int, logs: dict | None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if evaluate is not None:
            logs.update({f"val_{k}": float(v) for k, v in evaluate(model, "val").items()})
        logs["learning_rate"] = recipe.current_rate(model.optimizer)  # what the next step applies
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        if monitor not in logs:
            raise KeyError(f"metric {monitor!r} is not produced; this run logs: {', '.join(sorted(logs))}")
        value = logs[monitor]
        if math.isfinite(value) and (value < best["value"] if mode == "minimize" else value > best["value"]):
            best.update(epoch=epoch, value=value, weights=model.get_weights())
        sampled = dict(logs)  # epoch metrics, and on sampled epochs the gradient norms (not kept in the history)
        if norms is not None and math.isfinite(logs.get("loss", 0.0)) and gradnorms.due(epoch, norm_every):
            sampled.update(norms())
        for hook in hooks:
            hook(epoch, sampled)
        if not math.isfinite(logs.get("loss", 0.0)):
            raise Diverged(epoch, logs)
        if stops_early(history[monitor], int(best["epoch"]), hp.early_stopping):
            model.stop_training = True
        if checkpoint and hp.checkpoint_every and (epoch + 1) % hp.checkpoint_every == 0 and epoch + 1 < epochs:
            checkpoint(state(epoch))

    # Re-seed after building so the shuffling order depends on the seed only, not on the architecture.
    keras.utils.set_random_seed(seed + first)
    start = time.perf_counter()
    if first < epochs:
        model.fit(
            data.train.x, target(data.train), batch_size=hp.batch_size, epochs=epochs, initial_epoch=first,
            shuffle=True, verbose=0, validation_data=(data.val.x, target(data.val)),
            validation_batch_size=max(hp.batch_size, 1024),
            callbacks=[*recipe.callbacks(hp, monitor, mode), keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)],
        )
    seconds = time.perf_counter() - start
    if best["weights"] is None:
        raise Diverged(epochs - 1, {k: v[-1] for k, v in history.items()})
    if hp.select == "last":  # the weights as training left them, judged by their own validation score
        last = len(history[monitor]) - 1
        best.update(epoch=last, value=history[monitor][last], weights=model.get_weights())

    test: dict[str, float] = {}
    if evaluate_test:
        model.set_weights(best["weights"])
        scores = model.evaluate(data.test.x, target(data.test), batch_size=max(hp.batch_size, 1024), verbose=0,
                                return_dict=True)
        test = {f"test_{k}": float(v) for k, v in scores.items()}
        if evaluate is not None:
            test.update({f"test_{k}": float(v) for k, v in evaluate(model, "test").items()})
    from dlbench.models.cost import flops_per_example

    seen = len(data.train) * max(0, epochs - first)
    return FitResult(history, int(best["epoch"]), float(best["value"]), test, seconds, int(model.count_params()),
                     flops_per_example(model), seen / seconds if seconds > 0 else 0.0, settings, model,
                     epochs_trained=len(history.get(monitor, [])))


def save_model(model, path) -> None:
    """Save a trained model as a `.keras` file (architecture, weights, compile settings)."""
    model.save(str(path))
