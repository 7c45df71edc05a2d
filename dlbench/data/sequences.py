"""Synthetic sequence tasks generated from a seed, no download: adding, copy memory, reverse, sort and retrieve.

Every task draws its training, validation and test splits from three generators of their own, seeded by
(task, split_seed, split), so changing `n` never changes the validation or test examples, and numpy's global
generator is never touched. Token tasks give integer ids (int32) of shape (steps,) and say their `vocab`; the
adding task gives real features of shape (steps, 2). Each task states its input, target and metric below.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Callable

import numpy as np
import pydantic

from dlbench.data._common import IGNORE, DatasetInfo, Split

_SPLITS = "10000/1000/1000 examples by default (generated, offline)"
DESCRIPTIONS = {
    "adding": "adding problem (Le et al. 2015): (length,2) float inputs, values in [0,1] and a marker on two steps; "
              f"regression of the marked sum, y (1,), metric mse, constant-1 baseline 1/6; {_SPLITS}",
    "copy_memory": "copy memory (Bai et al. 2018): (delay+2*length,) token ids, `length` symbols then blanks and "
                   "delimiters; tagging, recall the symbols on the last `length` steps and blank elsewhere, every "
                   f"step scored, metrics accuracy and sequence_accuracy; {_SPLITS}",
    "reverse": "reverse: (2*length,) token ids, `length` symbols then `length` query tokens; tagging, the symbols "
               "in reverse order on the query steps (the first half ignored), metrics accuracy and "
               f"sequence_accuracy; {_SPLITS}",
    "sort": "sort: (2*length,) token ids, `length` symbols then `length` query tokens; tagging, the symbols sorted "
            "ascending on the query steps (the first half ignored), metrics accuracy and sequence_accuracy; "
            f"{_SPLITS}",
    "retrieve": "retrieve: (length+1,) token ids, `length` symbols then a cue naming one position; classification "
                f"of the symbol at the cued position, metric accuracy; {_SPLITS}",
}

# Seed keys of the generators (the first word of each split's seed): reverse and sort share one, so with the same
# options they read the same symbol sequences and differ only in their targets.
_KEYS = {"adding": 1, "copy_memory": 2, "order": 3, "retrieve": 4}


@dataclasses.dataclass(frozen=True)
class SequenceOptions:
    """Options of every generated sequence task (the examples are drawn i.i.d., so the stratifying options of the
    fixed datasets, train_size, labels_per_class and label_noise, do not apply)."""

    # Training examples generated.
    n: Annotated[int, pydantic.Field(ge=1)] = 10000
    # Validation and test examples generated, each from a generator of its own: they do not change with `n`.
    n_val: Annotated[int, pydantic.Field(ge=1)] = 1000
    n_test: Annotated[int, pydantic.Field(ge=1)] = 1000
    # Seed of the generated splits (not the run seed: every run sees the same examples).
    split_seed: Annotated[int, pydantic.Field(ge=0)] = 0


def _splits(opts: SequenceOptions, key: str, make: Callable[[np.random.Generator, int], tuple]) -> tuple[Split, ...]:
    """The train, val and test splits, `make(rng, rows)` called with a generator seeded by (key, split_seed, split)."""
    sizes = (opts.n, opts.n_val, opts.n_test)
    return tuple(Split(*make(np.random.default_rng([_KEYS[key], opts.split_seed, i]), rows))
                 for i, rows in enumerate(sizes))


# === Adding problem ===
#
# Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015 (section 4.1).
#   input: (length, 2) float32. Channel 0 holds values drawn from U[0, 1]; channel 1 is a marker, 1 at exactly two
#     steps, one drawn uniformly in the first half [0, length // 2) and one in the second half
#     [length // 2, length), 0 elsewhere.
#   target: the sum of the two marked values, y of shape (n, 1) float32, in [0, 2]. Task "regression", metric mse.
#   baseline: predicting the constant 1 (the mean of the target) gives an MSE of Var(a + b) = 2/12 = 1/6 ~ 0.167,
#     the baseline line of Le et al.'s Fig. 2; a model must beat it to have learnt anything.

ADDING_BASELINE_MSE = 1 / 6


@dataclasses.dataclass(frozen=True)
class AddingOptions(SequenceOptions):
    # Time steps of a sequence (T in Le et al.: they report 150, 200, 300 and 400).
    length: Annotated[int, pydantic.Field(ge=2)] = 100


def make_adding(rng: np.random.Generator, rows: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """`rows` adding examples: x (rows, length, 2) float32 and y (rows, 1) float32."""
    values = rng.random((rows, length), dtype=np.float32)
    half = length // 2
    first = rng.integers(0, half, size=rows)
    second = rng.integers(half, length, size=rows)
    index = np.arange(rows)
    marker = np.zeros((rows, length), dtype=np.float32)
    marker[index, first] = 1.0
    marker[index, second] = 1.0
    y = (values[index, first] + values[index, second])[:, None]
    return np.stack([values, marker], axis=-1), y.astype(np.float32)


def load_adding(opts: AddingOptions) -> DatasetInfo:
    train, val, test = _splits(opts, "adding", lambda rng, rows: make_adding(rng, rows, opts.length))
    return DatasetInfo("adding", "regression", (opts.length, 2), 0, train, val, test)


# === Copy memory ===
#
# The copy task in the version of Bai et al. 2018 (section 5.3, and `data_generator` in locuslab/TCN's
# copy_memory/utils.py), with `length` symbols (10 there), delay T and an alphabet of 8.
#   input: (T + 2 * length,) int32 token ids: 0 blank, 1..alphabet symbols, alphabet + 1 the delimiter. First
#     `length` symbols drawn uniformly, then T - 1 blanks, then the delimiter repeated on the last length + 1 steps
#     (the first of them marks the end of the wait; as Bai et al., who fill "the last 11 entries" with 9; the
#     earlier version of Arjovsky et al. 2016 has blanks after one delimiter).
#   target: (T + 2 * length,) int32: blank (0) on every step except the last `length`, which hold the symbols in
#     order. Every step is scored (no IGNORE), as in Bai et al.'s loss. Task "tagging", num_classes alphabet + 1,
#     metrics accuracy (per step) and sequence_accuracy.
#   baseline: a memoryless model that outputs blank until the recall, then a uniform guess over the alphabet, has a
#     cross-entropy per step of length * ln(alphabet) / (T + 2 * length) (`copy_memory_baseline_loss`).


@dataclasses.dataclass(frozen=True)
class CopyMemoryOptions(SequenceOptions):
    # Symbols to remember.
    length: Annotated[int, pydantic.Field(ge=1)] = 10
    # T, the wait between the last symbol and the delimiter step (Bai et al. report T = 1000).
    delay: Annotated[int, pydantic.Field(ge=1)] = 100
    # Symbols to draw from (token ids 1..alphabet).
    alphabet: Annotated[int, pydantic.Field(ge=1)] = 8


def copy_memory_baseline_loss(length: int, delay: int, alphabet: int) -> float:
    """The cross-entropy per step (natural log) of the memoryless strategy: blank until the recall, then uniform
    over the alphabet on the `length` recall steps (Bai et al.'s 10 ln 8 / (T + 20))."""
    return length * math.log(alphabet) / (delay + 2 * length)


def make_copy_memory(rng: np.random.Generator, rows: int, length: int, delay: int,
                     alphabet: int) -> tuple[np.ndarray, np.ndarray]:
    """`rows` copy-memory examples: x and y both (rows, delay + 2 * length) int32."""
    symbols = rng.integers(1, alphabet + 1, size=(rows, length), dtype=np.int32)
    x = np.zeros((rows, delay + 2 * length), dtype=np.int32)
    x[:, :length] = symbols
    x[:, length + delay - 1:] = alphabet + 1
    y = np.zeros_like(x)
    y[:, delay + length:] = symbols
    return x, y


def load_copy_memory(opts: CopyMemoryOptions) -> DatasetInfo:
    train, val, test = _splits(opts, "copy_memory", lambda rng, rows: make_copy_memory(rng, rows, opts.length,
                                                                                      opts.delay, opts.alphabet))
    return DatasetInfo("copy_memory", "tagging", (opts.delay + 2 * opts.length,), opts.alphabet + 1, train, val,
                       test, vocab=opts.alphabet + 2)


# === Reverse and sort ===
#
#   input: (2 * length,) int32 token ids: `length` symbols drawn uniformly from 1..vocab, then `length` query
#     tokens (id 0).
#   target: (2 * length,) int32: IGNORE (-1) on the first `length` steps; on the query steps the symbols in reverse
#     order (reverse) or sorted ascending (sort), each as class symbol - 1 in 0..vocab-1. Task "tagging",
#     num_classes vocab, DatasetInfo vocab vocab + 1; metrics accuracy (over the query steps) and
#     sequence_accuracy (every query step right).


@dataclasses.dataclass(frozen=True)
class OrderOptions(SequenceOptions):
    # Symbols in a sequence.
    length: Annotated[int, pydantic.Field(ge=1)] = 10
    # Distinct symbols (token ids 1..vocab; 0 is the query token).
    vocab: Annotated[int, pydantic.Field(ge=2)] = 10


def make_order(rng: np.random.Generator, rows: int, length: int, vocab: int,
               task: str) -> tuple[np.ndarray, np.ndarray]:
    """`rows` reverse or sort examples (`task`): x and y both (rows, 2 * length) int32."""
    symbols = rng.integers(1, vocab + 1, size=(rows, length), dtype=np.int32)
    x = np.concatenate([symbols, np.zeros_like(symbols)], axis=1)
    y = np.full_like(x, IGNORE)
    y[:, length:] = (symbols[:, ::-1] if task == "reverse" else np.sort(symbols, axis=1)) - 1
    return x, y


def _load_order(task: str, opts: OrderOptions) -> DatasetInfo:
    train, val, test = _splits(opts, "order", lambda rng, rows: make_order(rng, rows, opts.length, opts.vocab, task))
    return DatasetInfo(task, "tagging", (2 * opts.length,), opts.vocab, train, val, test, vocab=opts.vocab + 1)


def load_reverse(opts: OrderOptions) -> DatasetInfo:
    return _load_order("reverse", opts)


def load_sort(opts: OrderOptions) -> DatasetInfo:
    return _load_order("sort", opts)


# === Retrieve ===
#
#   input: (length + 1,) int32 token ids: `length` symbols drawn uniformly from 1..vocab, then one cue token
#     vocab + 1 + p naming a position p drawn uniformly from [0, length).
#   target: the symbol at position p as class symbol - 1, y of shape (n,) int32. Task "classification",
#     num_classes vocab, DatasetInfo vocab vocab + 1 + length; metric accuracy (chance 1 / vocab).


@dataclasses.dataclass(frozen=True)
class RetrieveOptions(SequenceOptions):
    # Symbols in a sequence (and positions a cue can name).
    length: Annotated[int, pydantic.Field(ge=1)] = 20
    # Distinct symbols (token ids 1..vocab).
    vocab: Annotated[int, pydantic.Field(ge=2)] = 10


def make_retrieve(rng: np.random.Generator, rows: int, length: int, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """`rows` retrieve examples: x (rows, length + 1) int32 and y (rows,) int32."""
    symbols = rng.integers(1, vocab + 1, size=(rows, length), dtype=np.int32)
    cued = rng.integers(0, length, size=rows)
    x = np.concatenate([symbols, (vocab + 1 + cued)[:, None].astype(np.int32)], axis=1)
    return x, symbols[np.arange(rows), cued] - 1


def load_retrieve(opts: RetrieveOptions) -> DatasetInfo:
    train, val, test = _splits(opts, "retrieve", lambda rng, rows: make_retrieve(rng, rows, opts.length, opts.vocab))
    return DatasetInfo("retrieve", "classification", (opts.length + 1,), opts.vocab, train, val, test,
                       vocab=opts.vocab + 1 + opts.length)
