"""Registry of datasets: name -> (loader, options dataclass, description)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping

from dlbench.data import digits, keras_datasets, mixtures, mnist5k, mnist_1d, sequences, spirals
from dlbench.data._common import DatasetInfo, DatasetUnavailable, Split, TASK_METRICS

__all__ = ["DatasetInfo", "DatasetUnavailable", "Split", "Entry", "get", "names", "load", "register", "TASK_METRICS"]


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    load: Callable[[Any], DatasetInfo]
    options: type
    description: str
    source: str = ""  # a plugin's "module:function (path)"; empty for the built-ins
    digest: str = ""  # sha256 of a plugin's source (part of the spec hash)


_DATASETS: dict[str, Entry] = {}


def register(entry: Entry, replace: bool = False) -> None:
    """Add a dataset (plugins go through dlbench.plugins, which checks them first); `replace` swaps in a new
    version of a plugin whose source changed."""
    if entry.name in _DATASETS and not replace:
        raise KeyError(f"The dataset name {entry.name!r} was already registered.")
    _DATASETS[entry.name] = entry


def _register(name: str, load: Callable, options: type, description: str) -> None:
    register(Entry(name, load, options, description))


_register("digits", digits.load, digits.Options, digits.DESCRIPTION)
_register("spirals", spirals.load, spirals.Options, spirals.DESCRIPTION)
_register("ring8", mixtures.load_ring8, mixtures.RingOptions, mixtures.DESCRIPTIONS["ring8"])
_register("grid25", mixtures.load_grid25, mixtures.GridOptions, mixtures.DESCRIPTIONS["grid25"])
_register("mnist5k", mnist5k.load, mnist5k.Options, mnist5k.DESCRIPTION)
_register("mnist1d", mnist_1d.load, mnist_1d.Options, mnist_1d.DESCRIPTION)
_register("mnist", keras_datasets.load_mnist, keras_datasets.Options, keras_datasets.DESCRIPTIONS["mnist"])
_register("fashion_mnist", keras_datasets.load_fashion_mnist, keras_datasets.Options,
          keras_datasets.DESCRIPTIONS["fashion_mnist"])
_register("cifar10", keras_datasets.load_cifar10, keras_datasets.Options, keras_datasets.DESCRIPTIONS["cifar10"])
_register("adding", sequences.load_adding, sequences.AddingOptions, sequences.DESCRIPTIONS["adding"])
_register("copy_memory", sequences.load_copy_memory, sequences.CopyMemoryOptions, sequences.DESCRIPTIONS["copy_memory"])
_register("reverse", sequences.load_reverse, sequences.OrderOptions, sequences.DESCRIPTIONS["reverse"])
_register("sort", sequences.load_sort, sequences.OrderOptions, sequences.DESCRIPTIONS["sort"])
_register("retrieve", sequences.load_retrieve, sequences.RetrieveOptions, sequences.DESCRIPTIONS["retrieve"])


def names() -> list[str]:
    return sorted(_DATASETS)


def get(name: str) -> Entry:
    try:
        return _DATASETS[name]
    except KeyError:
        raise ValueError(f"Unrecognized dataset: {name!r}; known datasets: {', '.join(names())}") from None


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, options: Any) -> DatasetInfo:
    return get(name).load(options)


def load(name: str, options: Mapping[str, Any] | None = None) -> DatasetInfo:
    """Load a dataset by registry name with its options (a mapping of the Options dataclass fields).

    Raises:
        ValueError: options that conflict or that the data cannot satisfy.
        DatasetUnavailable: the dataset's files are not on this machine and cannot be downloaded.
    """
    entry = get(name)
    return _load_cached(name, entry.options(**dict(options or {})))
