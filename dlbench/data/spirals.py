"""Interleaved noisy spirals in 2-D, generated from a seed: a tiny, fast, non-linear task for tests."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import numpy as np
import pydantic

from dlbench.data._common import CommonOptions, DatasetInfo, labeled, split

DESCRIPTION = "K interleaved noisy 2-D spirals generated from a seed (synthetic, instant, offline; for smoke tests)"


@dataclasses.dataclass(frozen=True)
class Options(CommonOptions):
    n: Annotated[int, pydantic.Field(ge=30)] = 600
    classes: Annotated[int, pydantic.Field(ge=2)] = 2
    noise: Annotated[float, pydantic.Field(ge=0)] = 0.2
    turns: Annotated[float, pydantic.Field(gt=0)] = 1.5


def make(n: int, classes: int, noise: float, turns: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    per = n // classes
    t = np.sqrt(rng.uniform(0.0, 1.0, size=(classes, per)))  # denser toward the centre
    xs, ys = [], []
    for k in range(classes):
        angle = 2 * np.pi * turns * t[k] + 2 * np.pi * k / classes
        r = t[k]
        pts = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
        xs.append(pts + rng.normal(scale=noise * 0.1, size=pts.shape))
        ys.append(np.full(per, k))
    return np.concatenate(xs).astype("float32"), np.concatenate(ys).astype("int32")


def load(opts: Options) -> DatasetInfo:
    x, y = make(opts.n, opts.classes, opts.noise, opts.turns, opts.split_seed)
    n_hold = max(opts.classes, len(y) // 5)
    train, val, test = split(x, y, n_val=n_hold, n_test=n_hold, seed=opts.split_seed)
    train, rest = labeled(train, opts)
    return DatasetInfo("spirals", "classification", (2,), opts.classes, train, val, test, unlabeled=rest)
