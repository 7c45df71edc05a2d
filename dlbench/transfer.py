"""Transfer learning: freeze a model's leading blocks, and initialise it from the best seed repeat of another arm or
of another experiment's finished run (the repeat's saved model, an MLflow artifact).

Blocks, for every builder: the model's layers that hold weights, in the model's order (a nested model, such as a
keras.applications network inside a float32 cast, counts by its own layers), so a Dense, a convolution, a batch
normalisation, a recurrent layer or an attention layer is one block each. The head is the last block: the output
layer. `freeze` ("none", "all_but_head", or a number k of leading blocks) sets those layers' `trainable` to False
before compiling: their weights never change, and a frozen batch normalisation normalises with its moving
statistics (Keras's rule for fine-tuning).

`init_from` names a source: an arm of the same experiment ("source") or an arm of another experiment in the same
tracking store ("digits_0to4/scratch"). Its finished seed repeat with the best `best_<metric>` (the validation
value that selected its weights, never a test score) gives the initial weights, paired with the model's blocks in
order, every weight's shape checked. The head is copied only when the source was trained on the same labels (the
same dataset and `classes`); otherwise (other classes, another number of classes) it keeps its fresh random
initialisation. A quick run (experiment `<name>-quick`) takes its sources from quick runs when the store has them.
Knows nothing of Optuna; reads MLflow through dlbench.tracking (imported when a store is read, so checking a
spec does not load MLflow).
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from typing import Any, Callable, Mapping

import numpy as np

from dlbench import models, train
from dlbench.spec import Choice, Experiment, SpecError

ALL_BUT_HEAD = "all_but_head"
MODEL_ARTIFACT = "model/model.keras"  # what a seed repeat saves (units.Trainer.save_model)


class SourceMissing(RuntimeError):
    """An `init_from` source the store does not (yet) hold: no such experiment or arm, or no finished repeat."""


@dataclasses.dataclass(frozen=True)
class Source:
    """The weights an `init_from` names: one list of arrays per block, and where they came from."""

    name: str  # as written in the spec: "arm" or "experiment/arm"
    experiment: str
    arm: str
    run_id: str
    seed: int
    value: float  # its best_<metric>
    labels: tuple  # (dataset name, classes or None): the labels its head was trained for
    weights: tuple[tuple[np.ndarray, ...], ...]


# === Blocks and freezing ===


def blocks(model) -> list:
    """The model's blocks: the layers holding weights, in order; nested models count by their own layers."""
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and getattr(layer, "weights", None) and _is_model(layer):
            out.extend(blocks(layer))
        elif layer.weights:
            out.append(layer)
    return out


def _is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def frozen_count(freeze: str | int, n_blocks: int) -> int:
    """How many leading blocks `freeze` keeps fixed in a model of `n_blocks`.

    Raises:
        ValueError: a number larger than the model's blocks.
    """
    if freeze == "none":
        return 0
    if freeze == ALL_BUT_HEAD:
        return n_blocks - 1
    if int(freeze) > n_blocks:
        raise ValueError(f"freeze = {freeze} is more than the model's {n_blocks} blocks (its layers with weights, "
                         f"head included); use at most {n_blocks}, or \"all_but_head\" ({n_blocks - 1})")
    return int(freeze)


def apply_freeze(model, freeze: str | int) -> int:
    """Set `trainable = False` on the model's first `freeze` blocks (before it is compiled); returns how many."""
    layers = blocks(model)
    k = frozen_count(freeze, len(layers))
    for layer in layers[:k]:
        layer.trainable = False
    return k


# === Loading a source's weights ===


def weights_of(model) -> tuple[tuple[np.ndarray, ...], ...]:
    return tuple(tuple(np.asarray(w) for w in layer.get_weights()) for layer in blocks(model))


def load_weights(model, source: Source, same_labels: bool) -> tuple[int, int]:
    """Copy the source's weights into the model's blocks, in order: (variables loaded, variables left at their
    fresh initialisation: the head's, when the labels differ).

    Raises:
        ValueError: another number of blocks, or a block (the head aside, when it is re-initialised) whose
            weight shapes differ; the message names the first such layer and both shapes.
    """
    layers = blocks(model)
    if len(layers) != len(source.weights):
        raise ValueError(f"the model has {len(layers)} blocks (layers with weights) but the weights of "
                         f"{source.name!r} have {len(source.weights)}: the architectures differ")
    loaded = fresh = 0
    for i, (layer, weights) in enumerate(zip(layers, source.weights)):
        mine = [tuple(w.shape) for w in layer.weights]
        theirs = [tuple(w.shape) for w in weights]
        if i == len(layers) - 1 and (not same_labels or mine != theirs):
            fresh += len(mine)  # a new head for other labels
            continue
        if mine != theirs:
            raise ValueError(f"block {i} ({layer.name}) has weight shapes {mine} but {source.name!r} has {theirs} "
                             "there: the architectures differ (fix the model's size parameters in [fixed])")
        layer.set_weights(list(weights))
        loaded += len(mine)
    return loaded, fresh


# === Sources ===


def parse_source(init_from: str) -> tuple[str | None, str]:
    """(experiment, arm) of an `init_from` value: (None, arm) for an arm of the same experiment."""
    experiment, _, arm = init_from.rpartition("/")
    return experiment or None, arm


def labels(dataset: Any) -> tuple:
    """(dataset name, classes) of a spec's dataset (a DatasetRef, or a stored spec's `dataset` value)."""
    if isinstance(dataset, str):
        return dataset, None
    if isinstance(dataset, Mapping):
        options = {k: v for k, v in dataset.items() if k != "name"}
        name = dataset["name"]
    else:
        name, options = dataset.name, dataset.options
    classes = options.get("classes")
    return name, None if classes is None else tuple(classes)


@functools.lru_cache(maxsize=16)
def _read(uri: str, run_id: str) -> tuple[tuple[np.ndarray, ...], ...]:
    """The block weights of a repeat's saved model (read once per process)."""
    import keras

    from dlbench import tracking as T

    with tempfile.TemporaryDirectory(prefix="dlbench-source-") as folder:
        path = T.download_artifact(uri, run_id, MODEL_ARTIFACT, folder)
        if path is None:
            raise SourceMissing(f"its best repeat (run {run_id}) saved no model ({MODEL_ARTIFACT}); run it again "
                                "with save_models = \"repeats\"")
        return weights_of(keras.saving.load_model(path, compile=False))


def find_source(exp: Experiment, init_from: str, uri: str) -> Source:
    """The best finished seed repeat of the arm `init_from` names, with its weights.

    Raises:
        SourceMissing: no such experiment or arm in the store, or no finished repeat with a saved model.
    """
    from dlbench import tracking as T

    experiment, arm = parse_source(init_from)
    if experiment is None:  # an arm of this experiment (checked with the spec; --arms may have left it out of `exp`)
        experiment, stored = exp.name, {"dataset": exp.dataset, "metric": exp.metric, "arms": None}
    else:
        if exp.name.endswith("-quick") and T.stored_spec(uri, f"{experiment}-quick") is not None:
            experiment = f"{experiment}-quick"
        stored = T.stored_spec(uri, experiment)
        if stored is None:
            raise SourceMissing(f"the tracking store {uri} holds no experiment {experiment!r}; run its spec first")
        stored["metric"] = stored.get("metric") or stored["metrics"][0]
    metric = stored["metric"]
    runs = [r for r in T.finished_repeats(uri, experiment, arm) if f"best_{metric}" in r.data.metrics]
    if not runs and stored["arms"] is not None and arm not in stored["arms"]:  # (as last run: maybe with --arms)
        raise SourceMissing(f"experiment {experiment!r} has no arm {arm!r}; its arms are {', '.join(stored['arms'])}")
    if not runs:
        raise SourceMissing(f"arm {arm!r} of experiment {experiment!r} has no finished seed repeat yet")
    sign = 1 if train.direction(metric) == "maximize" else -1
    best = max(runs, key=lambda r: (sign * r.data.metrics[f"best_{metric}"], -int(r.data.tags[T.TAG_SEED])))
    return Source(init_from, experiment, arm, best.info.run_id, int(best.data.tags[T.TAG_SEED]),
                  best.data.metrics[f"best_{metric}"], labels(stored["dataset"]), _read(uri, best.info.run_id))


class Transfer:
    """Freezing and initialisation for the units of one experiment (units.Trainer.builder applies it)."""

    def __init__(self, exp: Experiment, tracker):
        self.exp = exp
        self.tracker = tracker
        self._sources: dict[str, Source] = {}

    def source(self, init_from: str) -> Source:
        if init_from not in self._sources:
            self._sources[init_from] = find_source(self.exp, init_from, self.tracker.uri)
        return self._sources[init_from]

    def ready(self, arm) -> None:
        """Raise SourceMissing now, before the arm trains, if a source it may initialise from is missing."""
        for name in sources_of(self.exp, arm):
            try:
                self.source(name)
            except SourceMissing as e:
                raise SourceMissing(f"arm {arm.name!r} initialises from {name!r}, but {e}") from None

    def prepare(self, model, hp: train.TrainHParams, run_id: str, fresh: bool):
        """Initialise (a fresh unit only: a resumed one loads its own weights) and freeze the model; the params
        `freeze`, `init_from`, `frozen_blocks` and, when initialised, `init_loaded_variables` and
        `init_reinitialized_variables` and the tag naming the source run go to the unit's MLflow run."""
        from dlbench import tracking as T

        logged: dict[str, Any] = {"freeze": hp.freeze, "init_from": hp.init_from or ""}
        if hp.init_from and fresh:
            source = self.source(hp.init_from)
            loaded, reinit = load_weights(model, source, same_labels=source.labels == labels(self.exp.dataset))
            logged.update(init_loaded_variables=loaded, init_reinitialized_variables=reinit)
            self.tracker.set_tags(run_id, {T.TAG_INIT_SOURCE_RUN: source.run_id, T.TAG_INIT_SOURCE:
                                           f"{source.experiment}/{source.arm}/seed-{source.seed}"})
        logged["frozen_blocks"] = apply_freeze(model, hp.freeze)
        self.tracker.log_params(run_id, logged)
        return model


# === The spec's sources, order and checks ===


def _values(value: Any) -> tuple:
    return value.choices if isinstance(value, Choice) else () if value is None else (value,)


def sources_of(exp: Experiment, arm) -> tuple[str, ...]:
    return tuple(v for v in _values(exp.params_for(arm).get("init_from")) if v)


def is_source(exp: Experiment, arm: str) -> bool:
    """Whether another arm of the experiment initialises from this one."""
    return any(arm in sources_of(exp, a) for a in exp.arms)


def stages(exp: Experiment) -> list[list]:
    """The arms in the order they train: an arm that initialises from another arm of the experiment comes in a
    stage after it (its source's repeats finish first); without such arms, one stage of every arm."""
    order: dict[str, int] = {}

    def stage(name: str, seen: tuple = ()) -> int:
        if name not in order:
            deps = [a for a in (parse_source(s) for s in sources_of(exp, exp.arm(name))) if a[0] is None
                    and a[1] in exp.arm_names and a[1] not in seen]
            order[name] = 1 + max((stage(a, (*seen, name)) for _, a in deps), default=-1)
        return order[name]

    out: list[list] = [[] for _ in range(1 + max((stage(a.name) for a in exp.arms), default=0))]
    for a in exp.arms:
        out[order[a.name]].append(a)
    return [s for s in out if s]


def _field(exp: Experiment, arm, name: str) -> str:
    return next((f"{section}.{name}" for section, values in ((f"arms.{arm.name}", arm.params), ("search", exp.search),
                                                             ("fixed", exp.fixed)) if name in values), name)


def check(exp: Experiment, info, first_params: Callable, uri: str | None = None) -> None:
    """Check `freeze` and `init_from` before anything trains, building each model concerned at its first values
    (`first_params(arm)`: spaces.Params). Without `uri` (spec checking) the sources in this experiment: the arm
    exists, is not the arm itself nor in a cycle, and has the same blocks and shapes. With `uri` (a run starting)
    the sources in the store: another experiment's arm, or an arm of this one left out by --arms: it has a
    finished repeat whose weights load.

    Raises:
        SpecError: naming the arm's `freeze` or `init_from` field.
    """
    for arm in exp.arms:
        params = exp.params_for(arm)
        freezes = [v for v in _values(params.get("freeze")) if v not in ("none", ALL_BUT_HEAD)]
        names = sources_of(exp, arm)
        if not (freezes or names):
            continue
        target = first_params(arm)
        model = models.get(target.model_name).build(target.model, info)
        for k in freezes:
            try:
                frozen_count(k, len(blocks(model)))
            except ValueError as e:
                raise SpecError(exp.path, _field(exp, arm, "freeze"), str(e)) from None
        field = _field(exp, arm, "init_from")
        if names and _values(params.get("pretrain")) not in ((), ("none",)):
            raise SpecError(exp.path, field, "pretraining and init_from would both set the initial weights; use one")
        for name in names:
            experiment, source_arm = parse_source(name)
            try:
                if experiment is None and uri is None:
                    _check_arm(exp, arm, source_arm)
                    source = first_params(exp.arm(source_arm))
                    weights = weights_of(models.get(source.model_name).build(source.model, info))
                    load_weights(model, Source(name, exp.name, source_arm, "", 0, 0.0, (), weights), True)
                elif uri is not None and (experiment is not None or source_arm not in exp.arm_names):
                    load_weights(model, found := find_source(exp, name, uri), found.labels == labels(exp.dataset))
            except (SourceMissing, ValueError) as e:
                raise SpecError(exp.path, field, f"{name!r}: {e}") from None


def _check_arm(exp: Experiment, arm, source: str) -> None:
    if source not in exp.arm_names:
        raise ValueError(f"no arm {source!r} in this experiment (arms: {', '.join(exp.arm_names)}); another "
                         "experiment's arm is named \"<experiment>/<arm>\"")
    if source == arm.name or arm.name in _upstream(exp, source):
        raise ValueError("an arm cannot initialise from itself, directly or through other arms")


def _upstream(exp: Experiment, name: str, seen: frozenset = frozenset()) -> set[str]:
    """The arms of the experiment whose weights `name` starts from, directly or through others."""
    direct = {a for e, a in map(parse_source, sources_of(exp, exp.arm(name))) if e is None and a in exp.arm_names}
    return direct | {u for a in direct - seen for u in _upstream(exp, a, seen | {name})}
