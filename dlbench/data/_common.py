"""Shared dataset types and split helpers (stratified, seeded, reproducible)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import numpy as np
import pydantic

# What each task produces as Keras log keys (validation adds a `val_` prefix, repeats a `test_` prefix).
TASK_METRICS = {"classification": ("loss", "accuracy")}


@dataclasses.dataclass(frozen=True)
class Split:
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A loaded dataset: its task, shapes and fixed train/val/test splits (`unlabeled` = train rows without labels)."""

    name: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int
    train: Split
    val: Split
    test: Split
    unlabeled: Split | None = None


@dataclasses.dataclass(frozen=True)
class CommonOptions:
    """Options every dataset accepts."""

    # Stratified subset of the training split (small-data regime); validation and test splits are unchanged.
    train_size: Annotated[int, pydantic.Field(ge=1)] | None = None
    # Seed of the fixed train/val/test split (not the run seed: every run sees the same split).
    split_seed: int = 0


def split(x: np.ndarray, y: np.ndarray, *, n_val: int, n_test: int, seed: int) -> tuple[Split, Split, Split]:
    """Stratified train/val/test split, fixed by `seed`."""
    from sklearn.model_selection import train_test_split

    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=n_test, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=n_val, stratify=y_rest,
                                                      random_state=seed)
    return Split(x_train, y_train), Split(x_val, y_val), Split(x_test, y_test)


def subset(train: Split, train_size: int | None, seed: int) -> tuple[Split, Split | None]:
    """A stratified subset of the training split of `train_size` rows, and the remaining rows (unlabeled use)."""
    from sklearn.model_selection import train_test_split

    if train_size is None or train_size >= len(train):
        return train, None
    n_classes = len(np.unique(train.y))
    if train_size < n_classes:
        raise ValueError(f"train_size={train_size} is smaller than the number of classes ({n_classes})")
    x_keep, x_rest, y_keep, y_rest = train_test_split(train.x, train.y, train_size=train_size, stratify=train.y,
                                                      random_state=seed)
    return Split(x_keep, y_keep), Split(x_rest, y_rest)
