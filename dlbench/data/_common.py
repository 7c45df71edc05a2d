"""Shared dataset types and split helpers (stratified, seeded, reproducible)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import numpy as np
import pydantic

# What each task produces as Keras log keys (validation adds a `val_` prefix, repeats a `test_` prefix). A dataset
# says its task; supervised models fit it, autoencoders reconstruct the inputs whatever the dataset
# (`reconstruction_error` is the mean squared error of the reconstruction whatever the loss).
#   classification: one label per example; `accuracy` is the fraction of examples labelled right.
#   tagging: one label per position, y of shape (n, length), -1 where a position has no target (ignored by the
#     loss and the metrics); `accuracy` is the fraction of targeted positions labelled right (over all of them
#     in the split), `sequence_accuracy` the fraction of examples with every targeted position right.
#   regression: real targets, y of shape (n, outputs); the loss is the MSE and `mse` reports it alone (without
#     any regularization penalty the loss may carry).
#   generative (a VAE, whatever the dataset): `elbo` is the evidence lower bound per example in nats (higher is
#     better), `reconstruction` its -log p(x|z) part and `kl` its KL part (models/vae.py).
#   adversarial (a GAN, whatever the dataset): `d_loss`, `g_loss` and the discriminator's mean outputs `d_real`,
#     `d_fake` (models/adversarial.py); `loss` is their sum. Sample-quality metrics depend on the dataset
#     (models/gan_metrics.py, models.Entry.metrics_on).
TASK_METRICS = {"classification": ("loss", "accuracy"), "reconstruction": ("loss", "reconstruction_error"),
                "tagging": ("loss", "accuracy", "sequence_accuracy"), "regression": ("loss", "mse"),
                "generative": ("loss", "elbo", "reconstruction", "kl"),
                "adversarial": ("loss", "d_loss", "g_loss", "d_real", "d_fake")}
# The tasks a dataset can have (reconstruction is what a model does with any of them).
DATASET_TASKS = ("classification", "tagging", "regression")
# The target of a tagging position that has nothing to predict.
IGNORE = -1


class DatasetUnavailable(OSError):
    """A dataset's files are not on this machine and cannot be fetched; the message names them, the folder where
    they belong and the URL to fetch them from (the CLI exits 2 with it).

    Not a ValueError on purpose: the spec is valid, so spec checking lets it through untouched.
    """


@dataclasses.dataclass(frozen=True)
class Split:
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A loaded dataset: its task, shapes and fixed train/val/test splits (`unlabeled` = train rows without labels).

    `task` is one of DATASET_TASKS. `num_classes` is the number of classes (per position when tagging; 0 for
    regression). `vocab` > 0 means the inputs are integer token ids in [0, vocab) of shape (length,), which a
    model embeds; 0 means real-valued features.
    """

    name: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int
    train: Split
    val: Split
    test: Split
    unlabeled: Split | None = None
    vocab: int = 0
    # A known mixture of Gaussians the data is drawn from (ring8, grid25): its means (k, features) and common
    # standard deviation, against which a generator's samples are scored (models/gan_metrics.py).
    modes: np.ndarray | None = None
    mode_std: float = 0.0

    @classmethod
    def from_arrays(cls, name: str, task: str, train, val, test, num_classes: int | None = None) -> "DatasetInfo":
        """A dataset from (x, y) pairs for train, validation and test (e.g. what a dataset plugin returns).

        Inputs become float32; labels int64 (classification, tagging: -1 marks an unscored position) or float32
        (regression). `num_classes` defaults to the largest label + 1.
        """
        if task not in DATASET_TASKS:
            raise ValueError(f"task must be one of {', '.join(DATASET_TASKS)}; got {task!r}")
        splits = []
        for which, pair in (("train", train), ("val", val), ("test", test)):
            x, y = (np.asarray(a) for a in pair)
            if len(x) != len(y):
                raise ValueError(f"{which}: {len(x)} inputs but {len(y)} targets")
            splits.append(Split(x.astype("float32"), y.astype("float32" if task == "regression" else "int64")))
        if task == "regression":
            num_classes = 0
        elif num_classes is None:
            num_classes = int(max(int(s.y.max()) for s in splits if len(s)) + 1)
        return cls(name, task, tuple(splits[0].x.shape[1:]), num_classes, *splits)

    @property
    def outputs(self) -> int:
        """Units of the model's output layer: the classes, or the regression targets per example."""
        if self.task == "regression":
            return 1 if self.train.y.ndim == 1 else int(self.train.y.shape[-1])
        return self.num_classes


@dataclasses.dataclass(frozen=True)
class CommonOptions:
    """Options every dataset accepts."""

    # Stratified subset of the training split (small-data regime); validation and test splits are unchanged.
    # The other training rows become `unlabeled` (inputs for unsupervised pretraining).
    train_size: Annotated[int, pydantic.Field(ge=1)] | None = None
    # Few-labels regime: keep the labels of exactly this many training rows per class (a stratified subset drawn
    # with `split_seed`); the rest of the training split becomes `unlabeled`. Excludes `train_size`.
    labels_per_class: Annotated[int, pydantic.Field(ge=1)] | None = None
    # Seed of the fixed train/val/test split (not the run seed: every run sees the same split).
    split_seed: int = 0
    # Fraction of the training labels replaced by another class drawn at random (seeded by split_seed, so every
    # run sees the same noisy labels); validation and test labels stay clean (Zhang et al. 2017's corruption).
    label_noise: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.0

    def __post_init__(self):
        if self.train_size is not None and self.labels_per_class is not None:
            raise ValueError(f"give either train_size or labels_per_class, not both (got train_size="
                             f"{self.train_size}, labels_per_class={self.labels_per_class})")


@dataclasses.dataclass(frozen=True)
class ImageOptions(CommonOptions):
    """Options of the image datasets: channels-last images with pixels in [0, 1]."""

    # Resize the square images to image_size x image_size, once at load time (see `resize_images`).
    image_size: Annotated[int, pydantic.Field(ge=1)] | None = None


# A class-split task (`classes = [5, 6, 7, 8, 9]`): only those classes, labelled 0..k-1 in the order given.
Classes = tuple[Annotated[int, pydantic.Field(ge=0)], ...] | None


def check_classes(classes: Classes, num_classes: int) -> Classes:
    """`classes` as a tuple; raises the ValueError of an Options `__post_init__` when it is not a list of two or
    more distinct labels of the dataset's `num_classes`."""
    if classes is None:
        return None
    bad = [c for c in classes if not 0 <= c < num_classes]
    if len(classes) < 2 or bad or len(set(classes)) != len(classes):
        raise ValueError(f"classes must list two or more distinct labels among 0..{num_classes - 1}; got "
                         f"classes = {list(classes)}")
    return tuple(classes)


def select_classes(x: np.ndarray, y: np.ndarray, classes: Classes, n_val: int, n_test: int):
    """(x, y, n_val, n_test) for the rows of `classes` only, their labels remapped to 0..k-1 in the order given
    (`classes = [5, 6]`: digit 5 is label 0, digit 6 label 1), and the validation and test sizes scaled by the
    fraction of rows kept; everything unchanged for `classes = None`."""
    if classes is None:
        return x, y, n_val, n_test
    keep = np.isin(y, classes)
    relabel = np.full(int(y.max()) + 1, -1, dtype=y.dtype)
    relabel[list(classes)] = np.arange(len(classes), dtype=y.dtype)
    fraction = keep.sum() / len(y)
    return x[keep], relabel[y[keep]], round(n_val * fraction), round(n_test * fraction)


def split(x: np.ndarray, y: np.ndarray, *, n_val: int, n_test: int, seed: int) -> tuple[Split, Split, Split]:
    """Stratified train/val/test split, fixed by `seed`."""
    from sklearn.model_selection import train_test_split

    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=n_test, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=n_val, stratify=y_rest,
                                                      random_state=seed)
    return Split(x_train, y_train), Split(x_val, y_val), Split(x_test, y_test)


def labeled(train: Split, opts: CommonOptions) -> tuple[Split, Split | None]:
    """The labeled training rows and the unlabeled rest, from `train_size` or `labels_per_class` (else all rows),
    with `label_noise` applied to the labeled rows.

    Only ever called on the training split: validation and test rows never become unlabeled data, nor noisy.
    """
    if opts.labels_per_class is not None:
        train, rest = per_class(train, opts.labels_per_class, opts.split_seed)
    else:
        train, rest = subset(train, opts.train_size, opts.split_seed)
    return noisy_labels(train, opts.label_noise, opts.split_seed), rest


def noisy_labels(train: Split, fraction: float, seed: int) -> Split:
    """`train` with round(fraction * rows) labels, drawn at random, each replaced by a different class drawn at
    random, so exactly that fraction of the labels is wrong."""
    if not fraction:
        return train
    rng = np.random.default_rng([seed, 1])  # a stream of its own: the split draws stay as they were
    classes = np.unique(train.y)
    rows = rng.choice(len(train), size=round(fraction * len(train)), replace=False)
    y = train.y.copy()
    shift = rng.integers(1, len(classes), size=len(rows))  # to one of the other classes, uniformly
    position = np.searchsorted(classes, y[rows])
    y[rows] = classes[(position + shift) % len(classes)]
    return Split(train.x, y)


def per_class(train: Split, labels_per_class: int, seed: int) -> tuple[Split, Split]:
    """Exactly `labels_per_class` rows of each class (drawn with `seed`), and the remaining rows, in split order.

    Raises:
        ValueError: a class has fewer training rows than asked for.
    """
    classes, counts = np.unique(train.y, return_counts=True)
    if labels_per_class > counts.min():
        raise ValueError(f"labels_per_class={labels_per_class} is more than the training rows of class "
                         f"{classes[counts.argmin()]} ({counts.min()})")
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(train), dtype=bool)
    for c in classes:
        rows = np.flatnonzero(train.y == c)
        keep[rng.choice(rows, size=labels_per_class, replace=False)] = True
    if keep.all():
        return train, None
    return Split(train.x[keep], train.y[keep]), Split(train.x[~keep], train.y[~keep])


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


def carve(train: Split, n_val: int, seed: int) -> tuple[Split, Split]:
    """A stratified validation split of `n_val` rows carved from a dataset's own training split, fixed by `seed`."""
    from sklearn.model_selection import train_test_split

    x_train, x_val, y_train, y_val = train_test_split(train.x, train.y, test_size=n_val, stratify=train.y,
                                                      random_state=seed)
    return Split(x_train, y_train), Split(x_val, y_val)


def _resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of a triangle (bilinear) filter with half-pixel centres, widened by the shrink factor
    when shrinking (antialiasing, as PIL and `tf.image.resize(..., antialias=True)` do). Rows sum to 1."""
    scale = n_in / n_out
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    w = np.clip(1.0 - np.abs(centres[:, None] - np.arange(n_in)[None, :]) / max(scale, 1.0), 0.0, None)
    return w / w.sum(axis=1, keepdims=True)


def resize_images(x: np.ndarray, size: int, chunk: int = 8192) -> np.ndarray:
    """Resize channels-last images (N, H, W, C) with pixels in [0, 1] to (N, size, size, C), float32.

    Bilinear with half-pixel centres and edge clamping (what `keras.ops.image.resize` does when enlarging),
    antialiased when shrinking. Separable: one matrix product along the width and one along the height, with
    numpy only (no network, no Keras), once at load time: 60,000 28x28 images to 32x32 in about 0.3 s.
    """
    n, h, w, c = x.shape
    if (h, w) == (size, size):
        return x
    rows = _resize_weights(h, size).astype(np.float32)  # (size, h)
    cols_t = np.ascontiguousarray(_resize_weights(w, size).T, dtype=np.float32)  # (w, size)
    out = np.empty((n, size, size, c), dtype=np.float32)
    for start in range(0, n, chunk):  # bounds the intermediate arrays (CIFAR-10 at 64x64 is 2.5 GB)
        part = np.ascontiguousarray(x[start:start + chunk].transpose(0, 3, 1, 2), dtype=np.float32)  # (m, c, h, w)
        m = len(part)
        wide = (part.reshape(-1, w) @ cols_t).reshape(m * c, h, size)
        out[start:start + chunk] = np.matmul(rows, wide).reshape(m, c, size, size).transpose(0, 2, 3, 1)
    return np.clip(out, 0.0, 1.0, out=out)


def cache_dir() -> Path:
    """The user's cache folder for dlbench (generated data): $XDG_CACHE_HOME/dlbench, default ~/.cache/dlbench."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlbench"


# The fixed pixel order of `permute = true` (a permuted pixel sequence, Le et al. 2015's pMNIST): drawn from this
# seed, never from the split seed, so every run, every split and every split_seed see the same permutation.
PERMUTATION_SEED = 1234


def sequence_view(x: np.ndarray, shape: str, permute: bool = False) -> np.ndarray:
    """Channels-last images (N, H, W, C) as the inputs a model reads, in the same row order.

    Args:
        x: the images.
        shape: "image" (N, H, W, C) unchanged; "flat" (N, H*W*C) row-major; "rows" (N, H, W*C), one image row per
            time step with the row's pixels as features; "pixels" (N, H*W, C), one pixel per time step in
            row-major order.
        permute: reorder the pixel sequence (shape "pixels" only) by one fixed permutation of the H*W steps, drawn
            from PERMUTATION_SEED: the same for every load, split and seed.

    Raises:
        ValueError: `permute` with a shape other than "pixels", or an unknown shape.
    """
    check_permute(shape, permute)
    n, h, w, c = x.shape
    if shape == "image":
        return x
    if shape == "flat":
        return x.reshape(n, h * w * c)
    if shape == "rows":
        return x.reshape(n, h, w * c)
    if shape == "pixels":
        x = x.reshape(n, h * w, c)
        return x[:, pixel_permutation(h * w), :] if permute else x
    raise ValueError(f'shape must be "image", "flat", "rows" or "pixels"; got shape = {shape!r}')


def pixel_permutation(steps: int) -> np.ndarray:
    """The fixed permutation of `steps` pixel positions used by `permute = true` (a generator of its own: numpy's
    global generator is never touched)."""
    return np.random.default_rng(PERMUTATION_SEED).permutation(steps)


def check_permute(shape: str, permute: bool) -> None:
    """Raise the ValueError of an Options `__post_init__` when `permute` is set without shape = "pixels"."""
    if permute and shape != "pixels":
        raise ValueError(f'permute = true permutes the pixel sequence: it needs shape = "pixels"; got shape = '
                         f'"{shape}"')
