"""Your own models and datasets: decorators, `module:function` references in specs, and installed entry points.

A model function is called as `function(info, **hyperparameters)` and returns a keras.Model: `info` describes the
data (`info.input_shape`, `info.num_classes`, `info.task`, `info.vocab`), and the function's keyword parameters,
with their defaults and type hints, are the hyperparameters a spec may fix or search (checked like a built-in's).
A classifier ends in a softmax over `info.num_classes` (the trainer's loss takes probabilities). The trainer's
switches (optimizer, learning_rate, batch_size, schedules, clipping, ...) apply to it unchanged.

A dataset function is called as `function(**options)` and returns a `dlbench.DatasetInfo`, or the three splits as
`((x_train, y_train), (x_val, y_val), (x_test, y_test))` for a classification task.

Three ways in, one registry each (models.register / data.register):
  - `@dlbench.register_model(name, ...)` / `@dlbench.register_dataset(name, ...)` in your own code;
  - a spec naming `model = "package.module:function"` (or `dataset = "package.module:function"`), imported from the
    spec's own folder or from installed packages;
  - installed packages declaring entry points in the groups `dlbench.models` and `dlbench.datasets`.

Spawned workers get every plugin of the parent (`snapshot` / `restore`); workers on other machines import the same
references and entry points. What is hashed: the source file of the module that defines the function (its
sha256), so editing a plugin changes the experiment's spec hash and never resumes an old study silently.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import inspect
import sys
import typing
from pathlib import Path
from typing import Any, Callable

from dlbench import data, models
from dlbench.data import DatasetInfo
from dlbench.spec import Experiment, SpecError
from dlbench.progress import quiet_stderr
from dlbench.signatures import digest, signature_dataclass, where

__all__ = ["register_model", "register_dataset", "attach", "snapshot", "restore", "load_entry_points",
           "ENTRY_POINT_GROUPS"]

ENTRY_POINT_GROUPS = {"models": "dlbench.models", "datasets": "dlbench.datasets"}
_TASKS = ("classification", "tagging", "regression")

_SEARCH_DIRS: list[str] = []  # spec folders put on sys.path for `module:function` references (workers get them)
_PLUGINS: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, name) -> how to register it again in a worker
_entry_points_loaded = False


def _check_fields(kind: str, name: str, cls: type, fn: Callable) -> None:
    """Model hyperparameters may not take a trainer switch's name (the spec could not tell them apart)."""
    if kind != "model":
        return
    from dlbench.train import TrainHParams  # noqa: PLC0415 - keeps plain `import dlbench` light

    clash = sorted({f.name for f in dataclasses.fields(cls)} & {f.name for f in dataclasses.fields(TrainHParams)})
    if clash:
        raise ValueError(f"model plugin {name!r} ({where(fn)}): hyperparameter {clash[0]!r} is also the trainer's "
                         f"switch {clash[0]!r} (see `dlbench list techniques`); rename it")


# === Registration ===


def _model_entry(name: str, fn: Callable, hparams: type | None, task: str, tasks: tuple[str, ...] | None,
                 tokens: bool, description: str) -> models.Entry:
    if not callable(fn):
        raise TypeError(f"model plugin {name!r}: {fn!r} is not callable")
    if task not in ("classification", "reconstruction"):
        raise ValueError(f"model plugin {name!r}: task must be 'classification' (fits the dataset's own targets) "
                         f"or 'reconstruction' (reproduces its inputs); got {task!r}")
    cls = hparams or signature_dataclass(fn, "model", name, skip_first=True)
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"model plugin {name!r}: hparams must be a dataclass of defaults; got {cls!r}")
    _check_fields("model", name, cls, fn)

    def build(hp: Any, info: DatasetInfo) -> Any:
        import keras  # noqa: PLC0415

        model = fn(info, **{f.name: getattr(hp, f.name) for f in dataclasses.fields(hp)})
        if not isinstance(model, keras.Model):
            raise TypeError(f"model plugin {name!r}: {where(fn)} returned {type(model).__name__}, not a "
                            "keras.Model")
        return model

    build.plugin_function = fn
    first = (inspect.getdoc(fn) or "").strip().splitlines()
    return models.Entry(name, build, cls, description or (first[0] if first else f"plugin {where(fn)}"),
                        task=task, tasks=tuple(tasks or _TASKS), tokens=tokens, source=where(fn),
                        digest=digest(fn))


def _dataset_entry(name: str, fn: Callable, options: type | None, task: str, description: str) -> data.Entry:
    if not callable(fn):
        raise TypeError(f"dataset plugin {name!r}: {fn!r} is not callable")
    if task not in _TASKS:
        raise ValueError(f"dataset plugin {name!r}: task must be one of {', '.join(_TASKS)}; got {task!r}")
    cls = options or signature_dataclass(fn, "dataset", name, skip_first=False)

    def load(opts: Any) -> DatasetInfo:
        out = fn(**{f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)})
        if isinstance(out, DatasetInfo):
            return out
        try:
            return DatasetInfo.from_arrays(name, task, *out)
        except (TypeError, ValueError) as e:
            raise TypeError(f"dataset plugin {name!r}: {where(fn)} must return a dlbench.DatasetInfo or "
                            f"((x_train, y_train), (x_val, y_val), (x_test, y_test)): {e}") from None

    load.plugin_function = fn
    first = (inspect.getdoc(fn) or "").strip().splitlines()
    return data.Entry(name, load, cls, description or (first[0] if first else f"plugin {where(fn)}"),
                      source=where(fn), digest=digest(fn))


def _entry(kind: str, name: str, fn: Callable) -> Any:
    """The registry entry of a function registered with the defaults (a reference or an entry point)."""
    if kind == "model":
        return _model_entry(name, fn, None, "classification", None, False, "")
    return _dataset_entry(name, fn, None, "classification", "")


def _register(kind: str, entry: Any, recipe: dict[str, Any]) -> None:
    registry = models if kind == "model" else data
    try:
        existing = registry.get(entry.name)
    except ValueError:
        existing = None
    if existing is not None:
        if existing.source and existing.source == entry.source:
            # The same function again: a worker re-importing its module, or a notebook cell run again after an
            # edit, whose new code (and digest, so a new spec hash) takes over.
            if existing.digest != entry.digest:
                registry.register(entry, replace=True)
                _PLUGINS[(kind, entry.name)] = recipe
            return
        theirs = existing.source or f"the built-in {kind} (dlbench.{'models' if kind == 'model' else 'data'})"
        raise KeyError(f"The {kind} name {entry.name!r} was already registered by {theirs}; {entry.source} cannot "
                       "take it: choose another name")
    registry.register(entry)
    _PLUGINS[(kind, entry.name)] = recipe


def register_model(name: str, hparams: type | None = None, *, task: str = "classification",
                   tasks: tuple[str, ...] | None = None, tokens: bool = False, description: str = ""):
    """Register a model function under `name` (a decorator): `function(info, **hyperparameters) -> keras.Model`.

    Args:
        name: the name a spec's `model` gives. A built-in's name is refused, naming both.
        hparams: a dataclass of the hyperparameters and their defaults (typed fields, pydantic constraints
            allowed); default: the function's keyword parameters.
        task: "classification" (fits the dataset's own targets) or "reconstruction" (an autoencoder).
        tasks: the dataset tasks it can fit (default all: classification, tagging, regression).
        tokens: whether it takes token ids (datasets with a vocabulary) through an embedding of its own.
        description: one line for `dlbench list` (default: the first line of the docstring).
    """
    def wrap(fn: Callable) -> Callable:
        entry = _model_entry(name, fn, hparams, task, tasks, tokens, description)
        _register("model", entry, dict(fn=fn, hparams=hparams, task=task, tasks=tasks, tokens=tokens,
                                       description=description))
        return fn

    return wrap


def register_dataset(name: str, options: type | None = None, *, task: str = "classification",
                     description: str = ""):
    """Register a dataset function under `name` (a decorator): `function(**options)` returning a
    `dlbench.DatasetInfo` or `((x_train, y_train), (x_val, y_val), (x_test, y_test))`.

    Args:
        name: the name a spec's `dataset` gives (a built-in's name is refused).
        options: a dataclass of the options a spec's [dataset] table may set; default: the function's keyword
            parameters.
        task: classification, tagging or regression (for arrays; a DatasetInfo says its own).
        description: one line for `dlbench list`.
    """
    def wrap(fn: Callable) -> Callable:
        entry = _dataset_entry(name, fn, options, task, description)
        _register("dataset", entry, dict(fn=fn, options=options, task=task, description=description))
        return fn

    return wrap


# === References in specs, and entry points ===


def is_reference(name: str) -> bool:
    return ":" in name


def _import_reference(ref: str) -> Callable:
    """The function `package.module:function` names, imported from the spec folders or installed packages."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ImportError(f"expected \"package.module:function\"; got {ref!r}")
    with quiet_stderr():  # a model plugin imports Keras: without the C++ runtime's start-up lines
        module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ImportError(f"module {module_name!r} ({getattr(module, '__file__', '?')}) has no {attr!r}")
    if not callable(obj):
        raise TypeError(f"{ref!r} is a {type(obj).__name__}, not a function")
    return obj


def _use_folder(folder: str) -> None:
    if folder not in _SEARCH_DIRS:
        _SEARCH_DIRS.append(folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)


def load_entry_points() -> None:
    """Register what installed packages declare in the `dlbench.models` and `dlbench.datasets` groups (once).

    An entry point naming a function registers it under the entry point's name; one naming a module registers
    what its decorators register.
    """
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for kind, group in (("model", ENTRY_POINT_GROUPS["models"]), ("dataset", ENTRY_POINT_GROUPS["datasets"])):
        registry = models if kind == "model" else data
        for ep in importlib.metadata.entry_points(group=group):
            try:
                with quiet_stderr():
                    obj = ep.load()
                if callable(obj) and ep.name not in registry.names():
                    (register_model if kind == "model" else register_dataset)(ep.name)(obj)
            except Exception as e:  # noqa: BLE001 - the installed package's to fix; say which one
                package = getattr(ep.dist, "name", "?")
                raise SpecError(f"entry point {ep.name} = {ep.value!r} (group {group}, package {package})", "load",
                                f"{type(e).__name__}: {e}; fix or uninstall the package") from None


def _resolve(kind: str, ref: str, spec_path: str, field: str) -> None:
    registry = models if kind == "model" else data
    _use_folder(str(Path(spec_path).resolve().parent))
    try:
        if ref in registry.names():
            old = registry.get(ref)
            fn = old.build.plugin_function if kind == "model" else old.load.plugin_function
            if digest(fn) == old.digest:
                return
            # Its source changed since it was imported (a notebook re-running an edited file): run the new code.
            with quiet_stderr():
                importlib.reload(sys.modules[fn.__module__])
            registry.register(_entry(kind, ref, _import_reference(ref)), replace=True)
            return
        fn = _import_reference(ref)
        (register_model if kind == "model" else register_dataset)(ref)(fn)
    except Exception as e:  # noqa: BLE001 - any import or registration error is the spec's to fix
        raise SpecError(spec_path, field, f"cannot use {kind} {ref!r}: {type(e).__name__}: {e} (imported from the "
                        f"spec's folder {Path(spec_path).resolve().parent} or installed packages)") from None


def attach(exp: Experiment) -> Experiment:
    """Resolve the experiment's plugin references and entry points, and return it with the digests of every
    plugin it uses (`Experiment.sources`, part of the spec hash).

    Raises:
        SpecError: a reference that cannot be imported, is not callable or cannot register, naming the field.
    """
    load_entry_points()
    for arm in exp.arms:
        name = exp.model_for(arm)
        if is_reference(name):
            _resolve("model", name, exp.path, f"arms.{arm.name}.model" if arm.model else "model")
    if is_reference(exp.dataset.name):
        _resolve("dataset", exp.dataset.name, exp.path, "dataset.name")
    sources = {}
    for kind, names in (("model", {exp.model_for(a) for a in exp.arms}), ("dataset", {exp.dataset.name})):
        registry = models if kind == "model" else data
        for n in sorted(names):
            if n in registry.names() and registry.get(n).digest:
                sources[f"{kind}:{n}"] = registry.get(n).digest
    return dataclasses.replace(exp, sources=tuple(sorted(sources.items())))


def probe(exp: Experiment, info: DatasetInfo, defaults: Callable[[Any], Any]) -> None:
    """Build each plugin model once with its arm's fixed values, before anything runs, so a function that fails
    or does not return a keras.Model is a spec error naming the field.

    Args:
        defaults: the arm -> its model HParams (fixed values, searched ones at their defaults).
    """
    from dlbench.runtime import import_backend  # noqa: PLC0415

    import_backend()
    for arm in exp.arms:
        name = exp.model_for(arm)
        entry = models.get(name)
        if not entry.source:
            continue
        field = f"arms.{arm.name}.model" if arm.model else "model"
        try:
            with quiet_stderr():  # the first model built starts the backend's runtime
                entry.build(defaults(arm), info)
        except Exception as e:  # noqa: BLE001
            raise SpecError(exp.path, field, f"model {name!r} could not be built on dataset "
                            f"{exp.dataset.name!r}: {type(e).__name__}: {e}") from None


# === Workers ===


def snapshot() -> tuple[list[str], bytes]:
    """Everything a spawned worker needs to register the same plugins: the spec folders to import from, and the
    registrations (cloudpickle: functions defined in a notebook or a script's __main__ travel by value, those of
    importable modules by reference)."""
    import cloudpickle  # noqa: PLC0415

    return list(_SEARCH_DIRS), cloudpickle.dumps(dict(_PLUGINS))


def restore(state: tuple[list[str], bytes] | None) -> None:
    """Register in this process the plugins `snapshot` took in the parent (and the installed entry points)."""
    import pickle  # noqa: PLC0415

    load_entry_points()
    if not state:
        return
    folders, payload = state
    for folder in folders:  # first: unpickling a function of an importable module imports it from them
        _use_folder(folder)
    for (kind, name), recipe in pickle.loads(payload).items():
        registry = models if kind == "model" else data
        if name in registry.names():
            continue  # registered again when its module was imported
        if kind == "model":
            register_model(name, recipe["hparams"], task=recipe["task"], tasks=recipe["tasks"],
                           tokens=recipe["tokens"], description=recipe["description"])(recipe["fn"])
        else:
            register_dataset(name, recipe["options"], task=recipe["task"],
                             description=recipe["description"])(recipe["fn"])
