"""scikit-learn's 8x8 handwritten digits (1,797 images, shipped with the package): no download."""

from __future__ import annotations

import dataclasses
from typing import Literal

from dlbench.data._common import DatasetInfo, ImageOptions, labeled, resize_images, split

DESCRIPTION = ("scikit-learn's 8x8 handwritten digits, 10 classes, 1197/300/300 stratified split, inputs in [0,1], "
               "flat (64,) or shape=image (8,8,1) (shipped, offline)")
N_VAL = 300
N_TEST = 300


@dataclasses.dataclass(frozen=True)
class Options(ImageOptions):
    # "flat": 64 features (the default); "image": channels-last (8, 8, 1) images. The split is the same either way.
    # With `image_size`, the image is resized first (a flat input then has image_size**2 features).
    shape: Literal["flat", "image"] = "flat"


def load(opts: Options) -> DatasetInfo:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[..., None] / 16.0).astype("float32")  # (1797, 8, 8, 1); pixel values are 0..16
    if opts.image_size is not None:
        x = resize_images(x, opts.image_size)
    if opts.shape == "flat":
        x = x.reshape(len(x), -1)  # row-major, so the default is exactly `load_digits().data / 16`
    y = d.target.astype("int32")
    # The split depends only on the labels and the seed, so both shapes get the same rows in each split.
    train, val, test = split(x, y, n_val=N_VAL, n_test=N_TEST, seed=opts.split_seed)
    train, rest = labeled(train, opts)
    return DatasetInfo("digits", "classification", x.shape[1:], 10, train, val, test, unlabeled=rest)
