"""scikit-learn's 8x8 handwritten digits (1,797 images, shipped with the package): no download."""

from __future__ import annotations

import dataclasses
from typing import Literal

from dlbench.data._common import (Classes, DatasetInfo, ImageOptions, check_classes, check_permute, labeled,
                                  resize_images, select_classes, sequence_view, split)

DESCRIPTION = ("scikit-learn's 8x8 handwritten digits, 10 classes, 1197/300/300 stratified split, inputs in [0,1], "
               "flat (64,), shape=image (8,8,1), rows (8,8) or pixels (64,1), permute=true for a fixed pixel "
               "order (shipped, offline)")
N_VAL = 300
N_TEST = 300


@dataclasses.dataclass(frozen=True)
class Options(ImageOptions):
    # "flat": 64 features (the default); "image": channels-last (8, 8, 1) images; "rows": a sequence of 8 rows of 8
    # pixels, (8, 8); "pixels": a sequence of the 64 pixels in row-major order, (64, 1). The split is the same
    # whatever the shape. With `image_size`, the image is resized first (a flat input then has image_size**2
    # features, rows are (image_size, image_size), pixels (image_size**2, 1)).
    shape: Literal["flat", "image", "rows", "pixels"] = "flat"
    # Reorder the pixel sequence by one fixed permutation (the same for every run, split and split_seed): the
    # permuted-pixel task of Le et al. 2015. Only with shape = "pixels".
    permute: bool = False
    # Keep only these classes, labelled 0..k-1 in the order given (a class-split transfer task: `[0, 1, 2, 3, 4]`
    # then `[5, 6, 7, 8, 9]`); validation and test shrink in proportion to the rows kept. None: all ten.
    classes: Classes = None

    def __post_init__(self):
        super().__post_init__()
        check_permute(self.shape, self.permute)
        object.__setattr__(self, "classes", check_classes(self.classes, 10))  # a list from Python: a tuple


def load(opts: Options) -> DatasetInfo:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[..., None] / 16.0).astype("float32")  # (1797, 8, 8, 1); pixel values are 0..16
    if opts.image_size is not None:
        x = resize_images(x, opts.image_size)
    x = sequence_view(x, opts.shape, opts.permute)  # flat is row-major: exactly `load_digits().data / 16`
    y = d.target.astype("int32")
    x, y, n_val, n_test = select_classes(x, y, opts.classes, N_VAL, N_TEST)
    # The split depends only on the labels and the seed, so every shape gets the same rows in each split.
    train, val, test = split(x, y, n_val=n_val, n_test=n_test, seed=opts.split_seed)
    train, rest = labeled(train, opts)
    return DatasetInfo("digits", "classification", x.shape[1:], len(opts.classes or range(10)), train, val, test,
                       unlabeled=rest)
