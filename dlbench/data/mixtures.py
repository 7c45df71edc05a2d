"""Mixtures of 2-D Gaussians generated from a seed, the standard test beds of mode collapse in GANs.

- `ring8`: 8 Gaussians evenly spaced on a circle of radius 2, standard deviation 0.02 (Metz et al. 2017,
  "Unrolled generative adversarial networks"; Srivastava et al. 2017, VEEGAN).
- `grid25`: 25 Gaussians on a 5 x 5 grid with spacing 2 (-4, -2, 0, 2, 4 on each axis), standard deviation 0.05
  (Srivastava et al. 2017; Lin et al. 2018, PacGAN).

Every point is labelled with its mode (a classification task of 8 or 25 classes, so classifiers run on it too);
the DatasetInfo carries the modes' means and standard deviation, which the GAN metrics score samples against.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import numpy as np
import pydantic

from dlbench.data._common import CommonOptions, DatasetInfo, labeled, split

DESCRIPTIONS = {
    "ring8": "8 Gaussians on a ring of radius 2 (std 0.02), 2-D, labelled by mode; GAN mode-collapse test bed "
             "(synthetic, offline)",
    "grid25": "25 Gaussians on a 5x5 grid of spacing 2 (std 0.05), 2-D, labelled by mode; GAN mode-collapse test "
              "bed (synthetic, offline)",
}


@dataclasses.dataclass(frozen=True)
class RingOptions(CommonOptions):
    n: Annotated[int, pydantic.Field(ge=100)] = 10000  # points in all; a fifth each for validation and test
    std: Annotated[float, pydantic.Field(gt=0)] = 0.02
    radius: Annotated[float, pydantic.Field(gt=0)] = 2.0


@dataclasses.dataclass(frozen=True)
class GridOptions(CommonOptions):
    n: Annotated[int, pydantic.Field(ge=250)] = 10000
    std: Annotated[float, pydantic.Field(gt=0)] = 0.05
    spacing: Annotated[float, pydantic.Field(gt=0)] = 2.0


def ring_modes(radius: float, k: int = 8) -> np.ndarray:
    angles = 2 * np.pi * np.arange(k) / k
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1).astype("float32")


def grid_modes(spacing: float, side: int = 5) -> np.ndarray:
    ticks = (np.arange(side) - (side - 1) / 2) * spacing
    return np.array([(a, b) for a in ticks for b in ticks], dtype="float32")


def sample(modes: np.ndarray, std: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` points of the equal-weight mixture, with the index of the mode each came from."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(modes), size=n)
    x = modes[y] + rng.normal(scale=std, size=(n, modes.shape[1]))
    return x.astype("float32"), y.astype("int64")


def _load(name: str, modes: np.ndarray, opts) -> DatasetInfo:
    x, y = sample(modes, opts.std, opts.n, opts.split_seed)
    n_hold = max(len(modes), opts.n // 5)
    train, val, test = split(x, y, n_val=n_hold, n_test=n_hold, seed=opts.split_seed)
    train, rest = labeled(train, opts)
    return DatasetInfo(name, "classification", (2,), len(modes), train, val, test, unlabeled=rest, modes=modes,
                       mode_std=opts.std)


def load_ring8(opts: RingOptions) -> DatasetInfo:
    return _load("ring8", ring_modes(opts.radius), opts)


def load_grid25(opts: GridOptions) -> DatasetInfo:
    return _load("grid25", grid_modes(opts.spacing), opts)
