"""Search spaces: check a spec against the registries, and turn it into each trial's typed parameters.

The only module that calls `trial.suggest_*`. Every parameter name in a spec belongs to exactly one of the model
builder's HParams or the trainer's TrainHParams; its values are checked against that field's type.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing
from pathlib import Path
from typing import Any, Mapping

from dlbench import data, models, runtime, spec, stats, transfer
from dlbench.fields import allowed_values, base_type, check_value, field_types
from dlbench.spec import Choice, Experiment, Range, SpecError
from dlbench.train import COST_METRICS, TrainHParams, direction


@dataclasses.dataclass(frozen=True)
class Params:
    """A trial's parameters: typed model and training hyperparameters, and the flat mapping that was used."""

    model: Any
    train: TrainHParams
    values: Mapping[str, Any]
    model_name: str = ""  # the registry name of the model builder these parameters are for


def load(path: str | Path | Mapping[str, Any], sets: typing.Sequence[str | tuple[str, Any]] = (),
         **overrides) -> Experiment:
    """`spec.load` (or `spec.parse` of a mapping) with `--set` overrides, the plugins it names, `check`, then the
    budget overrides: everything a run validates before it starts."""
    from dlbench import plugins  # noqa: PLC0415

    if isinstance(path, Mapping):
        exp = spec.parse(spec.apply_sets(dict(path), sets, "<dict>"), "<dict>")
    else:
        exp = spec.load(path, sets)
    exp = plugins.attach(exp)
    check(exp)
    if any(v is not None for v in overrides.values()):
        exp = spec.with_overrides(exp, **overrides)
        from dlbench import search  # noqa: PLC0415  (Optuna, only once a spec is checked)

        search.check(exp, lambda arm: int_params(exp, arm))  # a grid and the new trial budget
    stats.warn_if_few_seeds(exp)
    return exp


# Trainer parameters a model may declare itself, taking them over: the autoencoder's `loss` is its reconstruction
# loss, the GAN's `label_smoothing` its discriminator's, not the classifier's switches.
MODEL_MAY_OWN = frozenset({"loss", "label_smoothing"})
# Trainer switches that shape a softmax classifier's loss, which a model with its own loss does not use.
CLASSIFIER_LOSS_SWITCHES = ("loss", "label_smoothing")


def _owners(model_name: str) -> dict[str, tuple[type, Any]]:
    """name -> (HParams class, field annotation) for the model's and the trainer's hyperparameters."""
    model_fields = field_types(models.get(model_name).hparams)
    train_fields = field_types(TrainHParams)
    overlap = set(model_fields) & set(train_fields) - MODEL_MAY_OWN
    if overlap:
        raise ValueError(f"There is overlap between model and training hparams of {model_name!r}: {sorted(overlap)}")
    owners = {k: (TrainHParams, t) for k, t in train_fields.items()}
    owners.update({k: (models.get(model_name).hparams, t) for k, t in model_fields.items()})
    return owners


def check(exp: Experiment) -> None:
    """Check registry names, parameter names and values, and the metric, for every arm's model.

    Raises:
        SpecError: naming the field and what is allowed.
    """
    entries = {}
    for arm in exp.arms:
        name = exp.model_for(arm)
        try:
            entries[arm.name] = models.get(name)
        except ValueError:
            field = f"arms.{arm.name}.model" if arm.model else "model"
            raise SpecError(exp.path, field, f"unknown model {name!r}; known models: {', '.join(models.names())}") from None
    try:
        ds = data.get(exp.dataset.name)
    except ValueError:
        raise SpecError(exp.path, "dataset", f"unknown dataset {exp.dataset.name!r}; known datasets: "
                        f"{', '.join(data.names())}") from None
    opt_fields = field_types(ds.options)
    for k, v in exp.dataset.options.items():
        if k not in opt_fields:
            raise SpecError(exp.path, f"dataset.{k}", f"unknown option of dataset {ds.name!r}; allowed: "
                            f"{', '.join(sorted(opt_fields))}")
        check_value(exp.path, f"dataset.{k}", opt_fields[k], v)
    try:  # options that conflict, or that the data cannot satisfy (more labels per class than rows)
        info = data.load(ds.name, exp.dataset.options)
    except ValueError as e:
        raise SpecError(exp.path, "dataset", str(e)) from None

    for arm in exp.arms:
        entry, model = entries[arm.name], exp.model_for(arm)
        field = f"arms.{arm.name}.model" if arm.model else "model"
        if entry.task not in models.UNSUPERVISED and info.task not in entry.tasks:
            fitting = [m for m in models.names() if info.task in models.get(m).tasks]
            raise SpecError(exp.path, field, f"model {model!r} fits {' or '.join(entry.tasks)} tasks; dataset "
                            f"{ds.name!r} is a {info.task} task: use one of {', '.join(fitting)}")
        if info.vocab and not entry.tokens:
            takers = [m for m in models.names() if models.get(m).tokens]
            raise SpecError(exp.path, field, f"dataset {ds.name!r} gives token ids (vocabulary {info.vocab}), "
                            f"which model {model!r} cannot embed; models that take tokens: {', '.join(takers)}")
        # e.g. a CNN given flat vectors, images below a minimum, a recurrent network given images
        refusal = None if info.vocab else entry.accepts(tuple(info.input_shape))
        if refusal:
            raise SpecError(exp.path, "dataset", f"model {model!r} cannot take the inputs of dataset {ds.name!r}: "
                            f"{refusal}")
        task, extra = entry.task_for(info.task), entry.metrics_on(info)
        produced = [m for base in data.TASK_METRICS[task] + tuple(k for k, v in extra.items() if v is None)
                    for m in (f"val_{base}", base)]
        for name in (m for m in exp.metrics or (exp.metric,) if extra.get(m.removeprefix("val_"))):
            raise SpecError(exp.path, "metrics" if exp.metrics else "metric", extra[name.removeprefix("val_")])
        if exp.metric not in produced:
            raise SpecError(exp.path, "metrics" if exp.metrics else "metric", f"{exp.metric!r} is not produced by "
                            f"model {model!r} on dataset {ds.name!r} ({task}); allowed: {', '.join(produced)}")
        for other in (m for m in exp.metrics[1:] if m not in [*produced, *COST_METRICS]):  # costs may be objectives
            raise SpecError(exp.path, "metrics", f"{other!r} is not produced by model {model!r} on dataset {ds.name!r} "
                            f"({task}); the objectives after the first may be {', '.join([*produced, *COST_METRICS])}")

        owners = _owners(model)
        # Shared sections must suit every arm's model; an arm's own values only its model.
        for section, params in (("fixed", exp.fixed), ("search", exp.search), (f"arms.{arm.name}", arm.params)):
            for name, value in params.items():
                _check_param(exp, f"{section}.{name}", name, value, owners, model)
        _check_combinations(exp, arm, entry.hparams, owners, lambda hp: entry.fits(hp, tuple(info.input_shape)))
        _check_combinations(exp, arm, TrainHParams, owners)
        _check_recipe(exp, arm, entry, owners, task)
        _check_speed_settings(exp, arm, entry)
    from dlbench import quantize, search  # noqa: PLC0415
    search.check(exp, lambda arm: int_params(exp, arm))
    quantize.check(exp, entries, info, lambda arm: resolve(exp, arm, first_values(exp, arm)).model)
    transfer.check(exp, info, lambda arm: resolve(exp, arm, first_values(exp, arm)))  # freeze, init_from
    if any(entries[a.name].source for a in exp.arms):
        from dlbench import plugins  # noqa: PLC0415
        plugins.probe(exp, info, lambda arm: resolve(exp, arm, first_values(exp, arm)).model)


def first_values(exp: Experiment, arm: spec.Arm) -> dict[str, Any]:
    """A value for each searched parameter (the low end of a range, the first choice): to build a model once."""
    out = {}
    for k, v in exp.params_for(arm).items():
        if isinstance(v, Choice):
            out[k] = v.choices[0]
        elif isinstance(v, Range):
            out[k] = int(v.low) if base_type(_owners(exp.model_for(arm))[k][1]) is int else v.low
    return out


def _check_param(exp: Experiment, field: str, name: str, value: Any, owners: dict, model: str) -> None:
    if name not in owners:
        raise SpecError(exp.path, field, f"model {model!r} and the trainer take no parameter {name!r}; "
                        f"allowed: {', '.join(sorted(owners))}")
    annotation = owners[name][1]
    if isinstance(value, Range):
        base = base_type(annotation)
        if base not in (int, float):
            raise SpecError(exp.path, field, f"{name} is not numeric, so it cannot be a range; use "
                            f"{{ choices = [...] }} with {allowed_values(annotation)}")
        if base is int and not (float(value.low).is_integer() and float(value.high).is_integer()):
            raise SpecError(exp.path, field, f"{name} is an integer: low and high must be integers")
        check_value(exp.path, f"{field}.low", annotation, int(value.low) if base is int else value.low)
        check_value(exp.path, f"{field}.high", annotation, int(value.high) if base is int else value.high)
    elif isinstance(value, Choice):
        for c in value.choices:
            check_value(exp.path, f"{field}.choices", annotation, c)
    else:
        check_value(exp.path, field, annotation, value)


_MAX_COMBINATIONS = 4096


def _check_combinations(exp: Experiment, arm: spec.Arm, model_cls: type, owners: dict, fits=lambda hp: None) -> None:
    """Values allowed alone but not together (pretraining with batch norm, ...), refused by `model_cls` (HParams or
    TrainHParams) or by `fits`; tries each combination of fixed values, choices and range ends (up to 4096)."""
    candidates = {}
    for name, value in exp.params_for(arm).items():
        if owners[name][0] is not model_cls:
            continue
        if isinstance(value, Choice):
            candidates[name] = value.choices
        elif isinstance(value, Range):
            ends = (value.low, value.high)
            candidates[name] = tuple(int(v) for v in ends) if base_type(owners[name][1]) is int else ends
        else:
            candidates[name] = (value,)
    names = list(candidates)
    for combo in itertools.islice(itertools.product(*candidates.values()), _MAX_COMBINATIONS):
        try:
            if reason := fits(model_cls(**dict(zip(names, combo)))):  # (HParams) -> why the data cannot fit
                raise ValueError(f"the inputs of dataset {exp.dataset.name!r} do not fit: {reason}")
        except ValueError as e:
            field = _field_of(exp, arm, e.field) if getattr(e, "field", None) else f"arms.{arm.name}"
            raise SpecError(exp.path, field, f"this arm's parameters (fixed, searched and its own) "
                            f"can take values that do not go together: {e}") from None


def _field_of(exp: Experiment, arm: spec.Arm, name: str) -> str:
    """Where the arm's value of `name` is written: its own section, else [search], else [fixed]."""
    return next((f"{section}.{name}" for section, values in
                 ((f"arms.{arm.name}", arm.params), ("search", exp.search), ("fixed", exp.fixed)) if name in values),
                name)


def _check_recipe(exp: Experiment, arm: spec.Arm, entry, owners: dict, task: str) -> None:
    """Training-recipe switches the arm's model, task or budget cannot use."""
    params = exp.params_for(arm)
    own_loss = entry.own_loss
    for name in CLASSIFIER_LOSS_SWITCHES:
        if name in params and owners[name][0] is TrainHParams and (own_loss or task != "classification"):
            why = "is trained with its own loss" if own_loss or entry.task != "classification" else \
                f"is trained for {task} here"
            raise SpecError(exp.path, _field_of(exp, arm, name), f"model {exp.model_for(arm)!r} {why}, so {name} "
                            "(for softmax classifiers of one label per example) does not apply to it")
    given = params.get("warmup_epochs", 0)
    warmup = given.high if isinstance(given, Range) else max(_values(given))
    if warmup >= exp.budget.epochs:
        raise SpecError(exp.path, _field_of(exp, arm, "warmup_epochs"), f"warm-up of {warmup:g} epochs leaves no "
                        f"epoch of the budget's {exp.budget.epochs} after it; use fewer warmup_epochs")


def _values(value: Any) -> tuple:
    return value.choices if isinstance(value, Choice) else (value,)


def _check_speed_settings(exp: Experiment, arm: spec.Arm, entry) -> None:
    """Speed settings that cannot run together on this backend, or with the arm's model."""
    params = exp.params_for(arm)
    defaults = TrainHParams()
    jit = _values(params.get("jit_compile", defaults.jit_compile))
    deterministic = _values(params.get("deterministic", defaults.deterministic))
    if runtime.backend_name() == "tensorflow" and True in jit and True in deterministic:
        raise SpecError(exp.path, _field_of(exp, arm, "jit_compile"), "jit_compile = true cannot run with "
                        "TensorFlow op determinism on (Keras turns XLA off under it); set deterministic = false "
                        "beside it, use jit_compile = \"auto\", or use the JAX backend (KERAS_BACKEND=jax)")
    if entry.task == "adversarial" and "mixed_float16" in _values(params.get("precision", defaults.precision)):
        raise SpecError(exp.path, _field_of(exp, arm, "precision"), "a GAN's two updates per step take no loss "
                        "scaling, so it trains in float32 or mixed_bfloat16, not mixed_float16")


def _suggest(trial, name: str, value: Any, annotation: Any) -> Any:
    if isinstance(value, Choice):
        return trial.suggest_categorical(name, list(value.choices))
    if isinstance(value, Range):
        if base_type(annotation) is int:
            return trial.suggest_int(name, int(value.low), int(value.high), step=int(value.step or 1), log=value.log)
        return trial.suggest_float(name, float(value.low), float(value.high), step=value.step, log=value.log)
    return value


def resolve(exp: Experiment, arm: spec.Arm, values: Mapping[str, Any]) -> Params:
    """Typed Params from the arm's fixed values plus `values` for its searched ones (e.g. a best trial's params)."""
    model = exp.model_for(arm)
    owners = _owners(model)
    merged = {k: (values[k] if spec.is_searched(v) else v) for k, v in exp.params_for(arm).items()}
    model_cls = models.get(model).hparams
    model_kw = {k: v for k, v in merged.items() if owners[k][0] is model_cls}
    train_kw = {k: v for k, v in merged.items() if owners[k][0] is TrainHParams}
    return Params(model_cls(**model_kw), TrainHParams(**train_kw), dict(sorted(merged.items())), model)


def sample(trial, exp: Experiment, arm: spec.Arm) -> Params:
    """Sample a trial's parameters: the arm's fixed values, and its searched ones from `trial.suggest_*`."""
    owners = _owners(exp.model_for(arm))
    sampled = {k: _suggest(trial, k, v, owners[k][1]) for k, v in exp.params_for(arm).items() if spec.is_searched(v)}
    return resolve(exp, arm, sampled)


def int_params(exp: Experiment, arm: spec.Arm) -> frozenset[str]:
    """The arm's searched parameters that are integers (their ranges are grids of whole numbers)."""
    owners = _owners(exp.model_for(arm))
    return frozenset(k for k in searched_names(exp, arm) if base_type(owners[k][1]) is int)


def searched_names(exp: Experiment, arm: spec.Arm) -> list[str]:
    return sorted(k for k, v in exp.params_for(arm).items() if spec.is_searched(v))


def directions(exp: Experiment) -> list[str]:
    """The direction of each objective of the arms' studies (`exp.objectives`), from the metric's name."""
    return [direction(m) for m in exp.objectives]
