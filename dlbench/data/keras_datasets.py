"""MNIST, Fashion-MNIST and CIFAR-10 through `keras.datasets`: downloaded on first use into the Keras cache.

Keras keeps the files under `$KERAS_HOME/datasets` (default `~/.keras/datasets`). Offline, a missing file makes
Keras fail with a bare "URL fetch failure" (or hang on network timeouts), so the cache is checked first: a
missing file is fetched only when its origin answers within a few seconds, and otherwise `DatasetUnavailable`
says which file is missing, where to put it and where to fetch it from. `DLBENCH_OFFLINE=1` never fetches.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from dlbench.data._common import DatasetInfo, DatasetUnavailable, ImageOptions, Split, carve, labeled, resize_images

N_VAL = 5000  # validation rows carved (stratified, `split_seed`) from each dataset's own training split
PROBE_TIMEOUT = 5.0  # seconds to wait for a missing file's origin before declaring the machine offline
_GCS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_FASHION = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz")


def _cifar_archive() -> str:
    """The name under which `keras.datasets.cifar10` keeps the downloaded cifar-10-python.tar.gz: Keras 3.6 and
    later save it as `cifar-10-batches-py-target_archive` (and unpack it into `cifar-10-batches-py-target/`),
    earlier versions as `cifar-10-batches-py.tar.gz`."""
    from importlib.metadata import version

    major, minor = (int(p) for p in version("keras").split(".")[:2])
    return "cifar-10-batches-py-target_archive" if (major, minor) >= (3, 6) else "cifar-10-batches-py.tar.gz"


@dataclasses.dataclass(frozen=True)
class Source:
    """Where `keras.datasets.<module>.load_data()` keeps its files and where it fetches them from."""

    module: str  # keras.datasets.<module>
    title: str
    subdir: str  # under the Keras datasets folder ("" for the folder itself)
    files: tuple[tuple[str, str], ...]  # (file name in the cache, URL it is fetched from)
    size: str  # download size, for the message


SOURCES = {
    "mnist": Source("mnist", "MNIST", "", (("mnist.npz", _GCS + "mnist.npz"),), "11 MB"),
    "fashion_mnist": Source("fashion_mnist", "Fashion-MNIST", "fashion-mnist",
                            tuple((f, _GCS + f) for f in _FASHION), "30 MB"),
    "cifar10": Source("cifar10", "CIFAR-10", "", ((_cifar_archive(), "https://www.cs.toronto.edu/~kriz/"
                                                                     "cifar-10-python.tar.gz"),), "170 MB"),
}

DESCRIPTIONS = {
    "mnist": "MNIST via keras.datasets, 28x28x1 in [0,1], 55000/5000/10000 split (11 MB download on first use)",
    "fashion_mnist": "Fashion-MNIST via keras.datasets, 28x28x1 in [0,1], 55000/5000/10000 split (30 MB download "
                     "on first use)",
    "cifar10": "CIFAR-10 via keras.datasets, 32x32x3 in [0,1], 45000/5000/10000 split (170 MB download on first use)",
}


@dataclasses.dataclass(frozen=True)
class Options(ImageOptions):
    pass


def keras_datasets_dir() -> Path:
    """The folder where keras.datasets keeps its files: `$KERAS_HOME/datasets`, default `~/.keras/datasets`.

    Keras's own rule, including its fallback to `/tmp/.keras` when the home folder cannot be written.
    """
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    home = os.path.expanduser(home)
    if os.path.isdir(home) and not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return Path(home) / "datasets"


def _unavailable(name: str, folder: Path, files: list[tuple[str, str]], problem: str) -> DatasetUnavailable:
    """The error for `files` of dataset `name`: `problem`, then the URLs to fetch and the exact paths to copy to."""
    src = SOURCES[name]
    them = "it" if len(files) == 1 else "them"
    dest = str(folder / files[0][0]) if len(files) == 1 else f"the folder {folder}"
    renamed = [f for f, url in files if f != url.rsplit("/", 1)[-1]]
    note = f" (under exactly that name: Keras keeps the archive as {renamed[0]} and unpacks it itself)" if renamed else ""
    return DatasetUnavailable(
        f"dataset {name!r} ({src.title}, {src.size}): {problem}. Fetch {', '.join(url for _, url in files)} on a "
        f"connected machine and copy {them} to {dest}{note}, or point KERAS_HOME at a folder whose datasets/ "
        f"subfolder holds {them}.")


def _reachable(url: str) -> str | None:
    """None when `url`'s server answers within PROBE_TIMEOUT seconds, else the reason it does not."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_TIMEOUT):
            return None
    except urllib.error.HTTPError:  # an answer, even a refusal: let Keras try, and report what it gets
        return None
    except (OSError, ValueError) as e:  # no name resolution, refused, timed out: offline
        return f"{type(e).__name__}: {getattr(e, 'reason', e)}"


def _fetch(name: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """`keras.datasets.<module>.load_data()`, called only once its files are present or their origin answers.

    Raises:
        DatasetUnavailable: a file is missing and cannot be downloaded, or Keras could not download or read it.
    """
    src = SOURCES[name]
    folder = keras_datasets_dir() / src.subdir
    home = "$KERAS_HOME" if "KERAS_HOME" in os.environ else "default ~/.keras"
    where = f"{folder} (the Keras cache, {home})"
    missing = [(f, url) for f, url in src.files if not (folder / f).is_file()]
    if missing:
        names = ", ".join(f for f, _ in missing)
        if os.environ.get("DLBENCH_OFFLINE", "0") not in ("", "0"):
            raise _unavailable(name, folder, missing, f"{names} not found in {where}, and DLBENCH_OFFLINE is set, "
                               "so nothing is downloaded")
        reason = _reachable(missing[0][1])
        if reason is not None:
            raise _unavailable(name, folder, missing, f"{names} not found in {where}, and this machine cannot "
                               f"download {'it' if len(missing) == 1 else 'them'} ({reason})")
    import importlib

    module = importlib.import_module(f"keras.datasets.{src.module}")
    try:
        return module.load_data()
    except Exception as e:  # Keras raises a bare Exception for a failed download, ValueError for a bad hash
        raise _unavailable(name, folder, list(src.files), f"Keras could not download or read "
                           f"{', '.join(f for f, _ in src.files)} in {where} ({type(e).__name__}: {e})") from e


def _images(x: np.ndarray, image_size: int | None) -> np.ndarray:
    """uint8 pixels -> float32 channels-last images in [0, 1], resized when asked."""
    if x.ndim == 3:
        x = x[..., None]
    elif x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):  # channels-first, when keras.json says so
        x = x.transpose(0, 2, 3, 1)
    x = x.astype(np.float32)
    x /= 255.0
    return resize_images(x, image_size) if image_size is not None else x


def load(name: str, opts: Options) -> DatasetInfo:
    (x_train, y_train), (x_test, y_test) = _fetch(name)
    train = Split(_images(x_train, opts.image_size), y_train.reshape(-1).astype("int32"))
    test = Split(_images(x_test, opts.image_size), y_test.reshape(-1).astype("int32"))
    train, val = carve(train, N_VAL, opts.split_seed)
    train, rest = labeled(train, opts)
    return DatasetInfo(name, "classification", train.x.shape[1:], 10, train, val, test, unlabeled=rest)


def load_mnist(opts: Options) -> DatasetInfo:
    return load("mnist", opts)


def load_fashion_mnist(opts: Options) -> DatasetInfo:
    return load("fashion_mnist", opts)


def load_cifar10(opts: Options) -> DatasetInfo:
    return load("cifar10", opts)
