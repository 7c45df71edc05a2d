"""Experiment specs: parse and validate an ablation TOML file into a frozen Experiment."""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, get_type_hints

import pydantic

PRUNERS = ("hyperband", "median", "none")
Scalar = bool | int | float | str
Pruner = Literal["hyperband", "successive_halving", "median", "percentile", "none"]
Sampler = Literal["tpe", "random", "grid", "gp", "cmaes", "qmc"]


class SpecError(ValueError):
    """A spec (or a value given on the command line) is invalid; names the file and the field."""

    def __init__(self, path: str | Path, field: str, message: str):
        self.path = str(path)
        self.field = field
        self.message = message
        super().__init__(f"{self.path}: field `{field}`: {message}")


class SpecWarning(UserWarning):
    """A valid spec with a weakness worth knowing before it runs (e.g. too few seeds for a test to reach α)."""

    def __init__(self, path: str | Path, field: str, message: str):
        self.path, self.field, self.message = str(path), field, message
        super().__init__(f"{self.path}: field `{field}`: {message}")


# === The schema: each section of a spec is declared once, as the frozen dataclass the code uses ===
#
# A field's type is also the type of its key in the file, unless its metadata (`_key`) gives the file's form:
# `toml` (the type a file writes, e.g. a table of arms for a tuple of Arm), `file_default` (when the file may leave
# out what the dataclass requires), `to_toml` (how `to_raw` writes the value back), `in_file=False` (set by the
# code, never by a file). `_table` derives the strict pydantic model that checks a section's structure and types
# from those fields, and `to_raw` writes every section back through the same fields: a new key is one line.


def _key(toml: Any = None, *, file_default: Any = dataclasses.MISSING, to_toml=None, in_file: bool = True,
         omit_empty: bool = False, **field_kw) -> Any:
    """A dataclass field with its spec-file form (see above); `omit_empty`: `to_raw` leaves an empty value out."""
    meta = {"toml": toml, "to_toml": to_toml, "in_file": in_file, "omit_empty": omit_empty}
    if file_default is not dataclasses.MISSING:
        meta["file_default"] = file_default
    return dataclasses.field(metadata=meta, **field_kw)


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)


@functools.cache
def _table(cls: type) -> type[pydantic.BaseModel]:
    """The strict pydantic model of a section's keys in the file, derived from its dataclass."""
    hints = get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("in_file", True):
            continue
        if "file_default" in f.metadata:
            default = f.metadata["file_default"]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = ...
        fields[f.name] = (f.metadata.get("toml") or hints[f.name], default)
    return pydantic.create_model(f"_{cls.__name__}Table", __base__=_Strict, **fields)


def _from_table(cls: type, table: pydantic.BaseModel, **typed: Any) -> Any:
    """A section's dataclass from its checked table; `typed` gives the fields whose form differs in the file."""
    return cls(**{**dict(table), **typed})


def _toml(v: Any) -> Any:
    """A value in its spec-file form: sections through their fields' `to_toml` (unset None values and, where the
    field says so, empty values left out), mappings as tables, tuples as lists."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        out = {}
        for f in dataclasses.fields(v):
            x = getattr(v, f.name)
            if not f.metadata.get("in_file", True) or x is None or (f.metadata.get("omit_empty") and not x):
                continue
            out[f.name] = f.metadata["to_toml"](x) if f.metadata.get("to_toml") else _toml(x)
        return out
    if isinstance(v, Mapping):
        return {k: _toml(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [_toml(x) for x in v]
    return v


# === Parameter values ===


@dataclasses.dataclass(frozen=True)
class Range:
    """A searched numeric range: `{ low = .., high = .., log = false, step = .. }`."""

    low: float
    high: float
    log: bool = False
    step: float | None = None


@dataclasses.dataclass(frozen=True)
class Choice:
    """A searched categorical value: `{ choices = [...] }`."""

    choices: tuple[Scalar, ...]


Value = Scalar | Range | Choice


def is_searched(value: Value) -> bool:
    return isinstance(value, (Range, Choice))


# === Experiment ===


@dataclasses.dataclass(frozen=True)
class Budget:
    trials: int
    epochs: int


@dataclasses.dataclass(frozen=True)
class Arm:
    name: str
    params: Mapping[str, Value]
    model: str | None = None  # the arm's own model builder (`model = "cnn"` in its table); None: the experiment's


def _arms_toml(arms: tuple[Arm, ...]) -> dict[str, Any]:
    return {a.name: {**({"model": a.model} if a.model else {}), **_toml(a.params)} for a in arms}


@dataclasses.dataclass(frozen=True)
class DatasetRef:
    name: str
    options: Mapping[str, Scalar | tuple[Scalar, ...]]


class _DatasetTable(pydantic.BaseModel):
    """`dataset = { name = "...", <option> = <scalar>, ... }`: the options are the table's other keys."""

    model_config = pydantic.ConfigDict(extra="allow", strict=True)
    name: str


@dataclasses.dataclass(frozen=True)
class Reference:
    source: str
    claim: str
    # Optional published numbers per arm and what they measure, e.g. {"sigmoid": 2.21, "tanh": 1.76}.
    results: Mapping[str, float] = dataclasses.field(default_factory=dict)
    results_metric: str | None = None
    lower_is_better: bool | None = None
    # Relative tolerance within which our mean should match `results` (when they are in our compared metric).
    tolerance: float | None = None


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A validated ablation: every arm is tuned under the same budget, then repeated over seeds."""

    name: str
    description: str = _key(file_default="")
    path: str = _key(in_file=False)  # the file it was read from
    dataset: DatasetRef = _key(str | _DatasetTable, to_toml=lambda d: {"name": d.name, **d.options})
    model: str
    metric: str = _key(str | None, file_default=None)  # with `metrics`, may be left out (it is their first)
    baseline: str
    seeds: int = _key(file_default=5)
    budget: Budget = _key(_table(Budget))
    pruner: str = _key(Pruner, file_default="hyperband")
    fixed: Mapping[str, Value] = _key(dict[str, Any], file_default={})
    search: Mapping[str, Value] = _key(dict[str, Any], file_default={})
    arms: tuple[Arm, ...] = _key(dict[str, dict[str, Any]], to_toml=_arms_toml)
    reference: Reference | None = _key(_table(Reference) | None, file_default=None)
    # "repeats": each seed repeat's final model is an artifact of its run; "none"
    save_models: str = _key(Literal["none", "repeats"], default="repeats")
    # ("model:<name>" | "dataset:<name>", sha256 of the plugin's source) for every plugin the experiment uses,
    # filled by plugins.attach and stored with the run; part of the spec hash. Empty for built-ins only.
    sources: tuple[tuple[str, str], ...] = _key(in_file=False, default=())
    sampler: str = _key(Sampler, default="tpe")  # Optuna sampler of every arm's study (search.SAMPLERS)
    # Differences smaller than this (absolute, in the compared metric) count as none: an arm whose difference
    # test fails and whose equivalence test (TOST) within ±margin succeeds is "equivalent". None: the default of
    # comparison.equivalence_margin (0.01 for accuracies, 5% of the baseline's mean for losses and errors).
    equivalence_margin: float | None = None
    # Multi-objective search: every objective of each trial, `metric` first (the one compared across arms and the
    # one that picks each arm's configuration to repeat); empty for a single objective (`metric`).
    metrics: tuple[str, ...] = _key(list[str] | None, file_default=None, omit_empty=True, default=())

    @property
    def objectives(self) -> tuple[str, ...]:
        """What each trial's study optimises: `metrics`, or `metric` alone."""
        return self.metrics or (self.metric,)

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arms)

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)

    def model_for(self, arm: Arm) -> str:
        """The model builder an arm trains: its own `model`, else the experiment's."""
        return arm.model or self.model

    def study_name(self, arm: str) -> str:
        """The Optuna study of an arm: "<name>/<arm>"."""
        return f"{self.name}/{arm}"

    def params_for(self, arm: Arm) -> dict[str, Value]:
        """Fixed, then shared search space, then the arm's own values (the arm wins)."""
        merged: dict[str, Value] = dict(self.fixed)
        merged.update(self.search)
        merged.update(arm.params)
        return merged

    @property
    def spec_hash(self) -> str:
        """Hash of everything that changes what a trial computes (not budget size, seeds or prose).

        Trials stored under one hash are comparable; a study holding another hash came from a different spec.
        """
        payload = {
            "dataset": [self.dataset.name, sorted(self.dataset.options.items())],
            "model": self.model,
            "metric": self.metric,
            "epochs": self.budget.epochs,
            "pruner": self.pruner,
            "params": {a.name: sorted((k, _jsonable(v)) for k, v in self.params_for(a).items()) for a in self.arms},
        }
        if any(a.model for a in self.arms):  # only then, so the hashes of single-model experiments never change
            payload["arm_models"] = {a.name: self.model_for(a) for a in self.arms}
        if self.sources:  # likewise: only experiments that use plugins hash their sources
            payload["sources"] = dict(self.sources)
        if self.sampler != "tpe":  # and another sampler than the default draws other trials
            payload["sampler"] = self.sampler
        if self.multi_objective:  # and other objectives steer the search elsewhere
            payload["metrics"] = list(self.metrics)
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _jsonable(v: Value) -> Any:
    return dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v


# === Raw schema (structure and types; meaning is checked below) ===

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_EXP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


_ALLOWED = {
    "": sorted(_table(Experiment).model_fields),
    "budget": sorted(_table(Budget).model_fields),
    "reference": sorted(_table(Reference).model_fields),
}

_TOML_TYPES = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "dict_type": "a table",
    "model_type": "a table",
}


def _pydantic_message(path: str | Path, err: dict) -> SpecError:
    loc = [str(p) for p in err["loc"] if not str(p).startswith(("str", "_DatasetTable", "function"))]
    field = ".".join(loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = ".".join(loc[:-1])
        allowed = _ALLOWED.get(parent, [])
        return SpecError(path, field, f"unknown key; allowed keys here: {', '.join(allowed)}")
    if kind == "missing":
        return SpecError(path, field, "is required but missing")
    if kind == "literal_error":
        return SpecError(path, field, f"{err['msg'].lower()}; got {err.get('input')!r}")
    if kind in _TOML_TYPES:
        return SpecError(path, field, f"must be {_TOML_TYPES[kind]}; got {err.get('input')!r}")
    return SpecError(path, field, f"{err['msg']}; got {err.get('input')!r}")


# === Loading ===


def load(path: str | Path, sets: Sequence[str | tuple[str, Any]] = ()) -> Experiment:
    """Read and validate a spec file.

    Args:
        path: a TOML file (see experiments/ and DESIGN.md for the format).
        sets: `--set` overrides, "dotted.key=value" (see `apply_sets`).

    Returns:
        The frozen Experiment.

    Raises:
        SpecError: naming the file, the field and what is allowed. Names in registries (dataset, model, parameter
            names and values) are checked by `spaces.check`, which needs the registries.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(path, "(file)", "no such spec file; see `dlbench list experiments` for the shipped ones")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"Cannot declare \('?([^)]*?)'?\) twice", str(e))
        if m:
            field = ".".join(p.strip(" '") for p in m.group(1).split(","))
            raise SpecError(path, field, f"declared twice (duplicate arm or table): {e}") from None
        raise SpecError(path, "(syntax)", f"not valid TOML: {e}") from None
    return parse(apply_sets(raw, sets, path), path)


def apply_sets(raw: dict[str, Any], sets: Sequence[str | tuple[str, Any]], path: str | Path = "<spec>") -> dict[str, Any]:
    """The spec mapping with `--set` overrides applied, before it is validated.

    Each override is "dotted.key=value": the key a path into the spec's tables (`dataset.train_size`,
    `budget.epochs`, `fixed.width`, `arms.dropout.dropout`), the value a TOML value (a bare word is a string:
    `--set fixed.activation=relu`). Unless `name` is set too, the experiment is renamed
    `<name>.<key>-<value>...` (e.g. `dropout.train_size-1000`), so a variant never mixes with the spec's own
    results.
    """
    raw = copy.deepcopy(raw)
    suffix, keys = [], []
    for item in sets:
        if isinstance(item, tuple):  # (key, value) from Python: dlbench.load_spec(path, **{"fixed.width": 64})
            key, value = item
            sep = "="
        else:
            key, sep, text = item.partition("=")
            try:
                value = tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                value = text.strip()
        parts = [p.strip() for p in key.split(".")]
        keys.append(key.strip())
        if not sep or not all(parts):
            raise SpecError(path, "--set", f"expected key=value (e.g. dataset.train_size=1000); got {item!r}")
        table = raw
        for i, part in enumerate(parts[:-1]):
            if part == "dataset" and i == 0 and isinstance(table.get("dataset"), str):
                table["dataset"] = {"name": table["dataset"]}  # dataset = "digits" is short for { name = ... }
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise SpecError(path, "--set", f"{'.'.join(parts[:i + 1])} is a value, not a table; cannot set {key}")
        table[parts[-1]] = value
        suffix.append(re.sub(r"[^A-Za-z0-9_.-]", "_", f"{parts[-1]}-{value}"))
    if suffix and "name" not in keys:
        raw["name"] = ".".join([str(raw.get("name", "")), *suffix])
    return raw


def parse(raw: Mapping[str, Any], path: str | Path = "<spec>") -> Experiment:
    """Validate an already-decoded spec mapping (see `load`)."""
    raw = dict(raw)
    sources = raw.pop("sources", None) or {}  # written by `to_raw` beside a run's results, never by hand
    if not (isinstance(sources, dict) and all(isinstance(v, str) for v in sources.values())):
        raise SpecError(path, "sources", f"the plugin digests stored with a run (key -> sha256); got {sources!r}")
    try:
        m = _table(Experiment).model_validate(raw)
    except pydantic.ValidationError as e:
        raise _pydantic_message(path, e.errors()[0]) from None

    if not _EXP_NAME_RE.match(m.name):
        raise SpecError(path, "name", f"must be letters, digits, '-', '_' or '.', starting with a letter or digit; got {m.name!r}")
    if m.seeds < 1:
        raise SpecError(path, "seeds", f"must be at least 1; got {m.seeds}")
    if m.budget.trials < 1:
        raise SpecError(path, "budget.trials", f"must be at least 1; got {m.budget.trials}")
    if m.budget.epochs < 1:
        raise SpecError(path, "budget.epochs", f"must be at least 1; got {m.budget.epochs}")
    metric, metrics, pruner = _objectives(path, m, explicit_pruner="pruner" in raw)
    margin = m.equivalence_margin  # strict pydantic: a number (an integer arrives as a float), never a string
    if margin is not None and not (math.isfinite(margin) and margin > 0):
        raise SpecError(path, "equivalence_margin", f"must be a number > 0 in the compared metric's units (e.g. 0.01 "
                        f"for one point of accuracy); got {margin!r}")

    if isinstance(m.dataset, str):
        dataset = DatasetRef(m.dataset, {})
    else:
        opts = dict(m.dataset.model_extra or {})
        for k, v in opts.items():
            if isinstance(v, list) and all(isinstance(x, (bool, int, float, str)) for x in v):
                opts[k] = v = tuple(v)  # e.g. classes = [0, 1, 2]: hashable, and a list again in `to_raw`
            if not isinstance(v, (bool, int, float, str, tuple)):
                raise SpecError(path, f"dataset.{k}", f"dataset options are values or lists of values; got {v!r}")
        dataset = DatasetRef(m.dataset.name, opts)

    fixed = {k: _fixed_value(path, f"fixed.{k}", v) for k, v in m.fixed.items()}
    search = {k: _param_value(path, f"search.{k}", v) for k, v in m.search.items()}
    for k, v in search.items():
        if not is_searched(v):
            raise SpecError(path, f"search.{k}", "values in [search] are searched: give { low, high } or { choices }; "
                            "put fixed values in [fixed]")
    both = set(fixed) & set(search)
    if both:
        k = sorted(both)[0]
        raise SpecError(path, f"search.{k}", "is both fixed (in [fixed]) and searched; keep one")

    if not m.arms:
        raise SpecError(path, "arms", "an ablation needs at least one arm: add a table [arms.<name>]")
    arms = []
    for name, params in m.arms.items():
        if not _NAME_RE.match(name):
            raise SpecError(path, f"arms.{name}", "arm names are short snake_case (lower-case letters, digits, '_')")
        params = dict(params)
        model = params.pop("model", None)
        if model is not None and not isinstance(model, str):
            raise SpecError(path, f"arms.{name}.model", f"the arm's model is a registry name (a string, e.g. "
                            f"\"cnn\"); got {model!r}")
        if not params and model is None:
            raise SpecError(path, f"arms.{name}", "empty arm: give at least one value that sets this arm apart")
        arms.append(Arm(name, {k: _param_value(path, f"arms.{name}.{k}", v) for k, v in params.items()}, model))
    if m.baseline not in m.arms:
        raise SpecError(path, "baseline", f"must name one of the arms: {', '.join(m.arms)}; got {m.baseline!r}")

    reference = None
    if m.reference is not None:
        r = m.reference
        for arm in r.results:
            if arm not in m.arms:
                raise SpecError(path, f"reference.results.{arm}", f"not an arm; arms are: {', '.join(m.arms)}")
        if r.tolerance is not None:
            compared = "test_" + metric.removeprefix("val_")
            if not (r.tolerance > 0 and math.isfinite(r.tolerance)):
                raise SpecError(path, "reference.tolerance", f"must be a number > 0 (relative); got {r.tolerance!r}")
            if not r.results or r.results_metric != compared:
                raise SpecError(path, "reference.tolerance", f"checks our {compared} against `results`, so it needs "
                                f"`results` per arm and results_metric = {compared!r}; got results_metric = "
                                f"{r.results_metric!r}")
        reference = _from_table(Reference, r)

    return Experiment(
        name=m.name, description=m.description, path=str(path), dataset=dataset, model=m.model, metric=metric,
        baseline=m.baseline, seeds=m.seeds, budget=_from_table(Budget, m.budget), pruner=pruner,
        fixed=fixed, search=search, arms=tuple(arms), reference=reference, save_models=m.save_models,
        sources=tuple(sorted(sources.items())), sampler=m.sampler, equivalence_margin=margin,
        metrics=metrics,
    )


def _objectives(path, m: pydantic.BaseModel, explicit_pruner: bool) -> tuple[str, tuple[str, ...], str]:
    """(metric, metrics, pruner) from `metric` and/or `metrics`: a list of two or more makes the search
    multi-objective, which Optuna cannot prune (so the pruner is "none", and any other is refused)."""
    if m.metrics is None:
        if m.metric is None:
            raise SpecError(path, "metric", "required: the metric each arm is tuned and compared on, e.g. "
                            "\"val_accuracy\" (or `metrics = [...]` for a multi-objective search)")
        return m.metric, (), m.pruner
    if not m.metrics:
        raise SpecError(path, "metrics", "must list at least one metric; the first is the one arms are compared on")
    if len(set(m.metrics)) != len(m.metrics):
        raise SpecError(path, "metrics", f"lists a metric twice: {m.metrics!r}")
    if m.metric is not None and m.metric != m.metrics[0]:
        raise SpecError(path, "metric", f"with `metrics`, `metric` may be left out; if given it must be the first "
                        f"of them ({m.metrics[0]!r}); got {m.metric!r}")
    if len(m.metrics) == 1:
        return m.metrics[0], (), m.pruner
    if explicit_pruner and m.pruner != "none":
        raise SpecError(path, "pruner", f"a multi-objective search (metrics = {m.metrics!r}) cannot prune: Optuna "
                        "has no pruning for several objectives. Leave `pruner` out or set pruner = \"none\"")
    return m.metrics[0], tuple(m.metrics), "none"


def _fixed_value(path, field: str, v: Any) -> Value:
    value = _param_value(path, field, v)
    if is_searched(value):
        raise SpecError(path, field, "values in [fixed] are fixed; move searched ranges to [search]")
    return value


def _param_value(path, field: str, v: Any) -> Value:
    """A scalar is fixed; `{low, high[, log, step]}` is a range; `{choices = [...]}` is categorical."""
    if isinstance(v, (bool, int, float, str)):
        if isinstance(v, float) and not math.isfinite(v):
            raise SpecError(path, field, f"must be a finite number; got {v!r}")
        return v
    if not isinstance(v, dict):
        raise SpecError(path, field, f"must be a value, {{ low = .., high = .. }} or {{ choices = [..] }}; got {v!r}")
    keys = set(v)
    if "choices" in keys:
        if keys != {"choices"}:
            raise SpecError(path, field, f"a choice table has only `choices`; unknown keys: {sorted(keys - {'choices'})}")
        ch = v["choices"]
        if not isinstance(ch, list) or not ch:
            raise SpecError(path, f"{field}.choices", "must be a non-empty list of values")
        for c in ch:
            if not isinstance(c, (bool, int, float, str)):
                raise SpecError(path, f"{field}.choices", f"choices are plain values (numbers, strings, booleans); got {c!r}")
        if len(set(map(repr, ch))) != len(ch):
            raise SpecError(path, f"{field}.choices", f"lists a value twice: {ch!r}")
        return Choice(tuple(ch))
    if {"low", "high"} <= keys:
        extra = keys - {"low", "high", "log", "step"}
        if extra:
            raise SpecError(path, field, f"unknown keys {sorted(extra)}; a range allows low, high, log, step")
        low, high, log, step = v["low"], v["high"], v.get("log", False), v.get("step")
        for k, x in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise SpecError(path, f"{field}.{k}", f"must be a finite number; got {x!r}")
        if not isinstance(log, bool):
            raise SpecError(path, f"{field}.log", f"must be true or false; got {log!r}")
        if low > high:
            raise SpecError(path, field, f"impossible range: low ({low}) > high ({high})")
        if log and low <= 0:
            raise SpecError(path, f"{field}.low", f"a log range needs low > 0; got {low}")
        if step is not None:
            if step <= 0:
                raise SpecError(path, f"{field}.step", f"must be > 0; got {step}")
            if log:
                raise SpecError(path, field, "a range cannot have both `log = true` and `step`")
        return Range(low, high, log, step)
    raise SpecError(path, field, f"a searched value needs both `low` and `high`, or `choices`; got keys {sorted(keys)}")


def with_overrides(exp: Experiment, *, trials: int | None = None, epochs: int | None = None,
                   seeds: int | None = None, arms: list[str] | None = None, name: str | None = None) -> Experiment:
    """The experiment with command-line budget overrides applied (validated like the spec itself)."""
    budget = exp.budget
    for flag, value in (("--trials", trials), ("--epochs", epochs), ("--seeds", seeds)):
        if value is not None and value < 1:
            raise SpecError(exp.path, flag, f"must be at least 1; got {value}")
    budget = Budget(trials or budget.trials, epochs or budget.epochs)
    selected = exp.arms
    baseline = exp.baseline
    if arms:
        unknown = [a for a in arms if a not in exp.arm_names]
        if unknown:
            raise SpecError(exp.path, "--arms", f"unknown arm {unknown[0]!r}; arms are: {', '.join(exp.arm_names)}")
        selected = tuple(a for a in exp.arms if a.name in arms)
        if baseline not in arms:
            baseline = selected[0].name
    reference = for_arms(exp.reference, [a.name for a in selected]) if arms else exp.reference
    return dataclasses.replace(exp, budget=budget, seeds=seeds or exp.seeds, arms=selected, baseline=baseline,
                               name=name or exp.name, reference=reference)


def for_arms(reference: Reference | None, arms) -> Reference | None:
    """`reference` with published results only for `arms`: those of arms that did not run are not compared."""
    if reference is None:
        return None
    return dataclasses.replace(reference, results={k: v for k, v in reference.results.items() if k in arms})


def to_raw(exp: Experiment) -> dict[str, Any]:
    """The experiment as a spec mapping (what `parse` reads), e.g. to store beside its results."""
    out = _toml(exp)
    if exp.sources:  # the plugin digests travel with a stored spec (parse reads them back), never in a file
        out["sources"] = dict(exp.sources)
    return out
