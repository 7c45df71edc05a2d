"""Registry of model builders: name -> (build function, HParams dataclass, description)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from dlbench.models import mlp

__all__ = ["Entry", "get", "names"]


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    build: Callable[[Any, Any], Any]  # (HParams, DatasetInfo) -> keras.Model
    hparams: type
    description: str
    tasks: tuple[str, ...] = ("classification",)


_MODELS: dict[str, Entry] = {}


def _register(entry: Entry) -> None:
    if entry.name in _MODELS:
        raise KeyError(f"The model name {entry.name!r} was already registered.")
    _MODELS[entry.name] = entry


_register(Entry("mlp", mlp.build, mlp.HParams, mlp.DESCRIPTION))


def names() -> list[str]:
    return sorted(_MODELS)


def get(name: str) -> Entry:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"Unrecognized model: {name!r}; known models: {', '.join(names())}") from None
