"""Registry of model builders: name -> (build function, HParams dataclass, description, task, loss)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from dlbench.models import autoencoder, mlp

__all__ = ["Entry", "get", "names"]


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    build: Callable[[Any, Any], Any]  # (HParams, DatasetInfo) -> keras.Model
    hparams: type
    description: str
    # What the model is trained to do (a key of data.TASK_METRICS): "classification" (targets are the labels) or
    # "reconstruction" (targets are the inputs). It fixes the metrics a spec may name.
    task: str = "classification"
    # The Keras loss for a model's hyperparameters; None: the task's default (train.TASKS).
    loss: Callable[[Any], str | None] = lambda hp: None


_MODELS: dict[str, Entry] = {}


def _register(entry: Entry) -> None:
    if entry.name in _MODELS:
        raise KeyError(f"The model name {entry.name!r} was already registered.")
    _MODELS[entry.name] = entry


_register(Entry("mlp", mlp.build, mlp.HParams, mlp.DESCRIPTION))
_register(Entry("autoencoder", autoencoder.build, autoencoder.HParams, autoencoder.DESCRIPTION,
                task="reconstruction", loss=lambda hp: hp.loss))


def names() -> list[str]:
    return sorted(_MODELS)


def get(name: str) -> Entry:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"Unrecognized model: {name!r}; known models: {', '.join(names())}") from None
