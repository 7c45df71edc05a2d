"""scikit-learn's 8x8 handwritten digits (1,797 images, shipped with the package): no download."""

from __future__ import annotations

import dataclasses

import numpy as np

from dlbench.data._common import CommonOptions, DatasetInfo, labeled, split

DESCRIPTION = "scikit-learn's 8x8 handwritten digits, 10 classes, 1197/300/300 stratified split, inputs in [0,1] (offline)"
N_VAL = 300
N_TEST = 300


@dataclasses.dataclass(frozen=True)
class Options(CommonOptions):
    pass


def load(opts: Options) -> DatasetInfo:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype("float32")  # pixel values are 0..16
    y = d.target.astype("int32")
    train, val, test = split(x, y, n_val=N_VAL, n_test=N_TEST, seed=opts.split_seed)
    train, rest = labeled(train, opts)
    return DatasetInfo("digits", "classification", (64,), 10, train, val, test, unlabeled=rest)
