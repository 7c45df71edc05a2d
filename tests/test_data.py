"""Datasets: fixed stratified splits, scaling, and the small-training-set option."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SPECS, dlbench, write_spec
from dlbench import data


def test_digits_split_sizes_scaling_and_stratification():
    d = data.load("digits")
    assert (len(d.train), len(d.val), len(d.test)) == (1197, 300, 300)
    assert d.input_shape == (64,) and d.num_classes == 10 and d.task == "classification"
    assert d.train.x.dtype == np.float32 and d.train.x.min() == 0.0 and d.train.x.max() == 1.0
    # Stratified: every class has 30 +- 1 examples in the 300-row test split.
    counts = np.bincount(d.test.y, minlength=10)
    assert counts.min() >= 29 and counts.max() <= 31
    # No row is in two splits.
    rows = lambda s: {r.tobytes() for r in s.x}  # noqa: E731
    assert not (rows(d.train) & rows(d.test)) and not (rows(d.val) & rows(d.test))


def test_digits_split_is_fixed_by_its_seed():
    a = data.get("digits").load(data.get("digits").options())
    b = data.get("digits").load(data.get("digits").options())
    np.testing.assert_array_equal(a.test.y, b.test.y)
    c = data.get("digits").load(data.get("digits").options(split_seed=1))
    assert not np.array_equal(a.test.y, c.test.y)


def test_train_size_is_a_stratified_subset_and_leaves_val_test_unchanged():
    full = data.load("digits")
    small = data.load("digits", {"train_size": 100})
    assert len(small.train) == 100
    assert np.bincount(small.train.y, minlength=10).tolist() == [10] * 10
    assert len(small.unlabeled) == 1097
    np.testing.assert_array_equal(small.val.x, full.val.x)
    np.testing.assert_array_equal(small.test.y, full.test.y)


def test_spirals_are_generated_from_a_seed():
    a = data.load("spirals", {"n": 200, "classes": 3})
    b = data.load("spirals", {"n": 200, "classes": 3, "split_seed": 0})
    assert a.input_shape == (2,) and a.num_classes == 3
    assert len(a.train) + len(a.val) + len(a.test) == 198  # 3 x 66
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert set(np.unique(a.train.y)) == {0, 1, 2}


def test_labels_per_class_keeps_that_many_labels_per_class_and_the_rest_of_train_unlabeled():
    full = data.load("digits")
    few = data.load("digits", {"labels_per_class": 20})
    assert np.bincount(few.train.y, minlength=10).tolist() == [20] * 10
    assert len(few.unlabeled) == 1197 - 200
    # Labeled and unlabeled rows partition the training split; validation and test rows are untouched.
    rows = lambda x: {r.tobytes() for r in x}  # noqa: E731
    assert rows(few.train.x) | rows(few.unlabeled.x) == rows(full.train.x)
    assert not rows(few.train.x) & rows(few.unlabeled.x)
    np.testing.assert_array_equal(few.val.x, full.val.x)
    np.testing.assert_array_equal(few.test.y, full.test.y)
    # Drawn with the split seed: the same seed gives the same labeled rows, another seed others.
    again = data.load("digits", {"labels_per_class": 20})
    np.testing.assert_array_equal(few.train.x, again.train.x)
    other = data.load("digits", {"labels_per_class": 20, "split_seed": 1})
    assert rows(other.train.x) != rows(few.train.x)


def test_labels_per_class_refuses_train_size_and_more_labels_than_a_class_has():
    with pytest.raises(ValueError, match="either train_size or labels_per_class, not both"):
        data.load("digits", {"labels_per_class": 20, "train_size": 300})
    with pytest.raises(ValueError, match=r"labels_per_class=500 is more than the training rows of class \d \(116\)"):
        data.load("digits", {"labels_per_class": 500})
    assert data.load("digits").unlabeled is None


# === Image data sets ===


def test_digits_as_images_are_8x8x1_in_0_1_with_the_same_split():
    flat = data.load("digits")
    img = data.load("digits", {"shape": "image"})
    assert img.input_shape == (8, 8, 1) and img.num_classes == 10
    assert img.train.x.shape == (1197, 8, 8, 1) and img.train.x.dtype == np.float32
    assert img.train.x.min() == 0.0 and img.train.x.max() == 1.0
    # The same rows in each split: the image, flattened row-major, is the flat input.
    np.testing.assert_array_equal(img.test.x.reshape(300, 64), flat.test.x)
    np.testing.assert_array_equal(img.train.y, flat.train.y)


def test_resize_is_bilinear_with_half_pixel_centres_and_antialiased_when_shrinking():
    from dlbench.data._common import resize_images

    ramp = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32).reshape(1, 2, 2, 1)
    up = resize_images(ramp, 4)
    # Output pixel centres fall at -0.25, 0.25, 0.75, 1.25 input pixels; the edges are clamped.
    np.testing.assert_allclose(up[0, :, :, 0], [[0.0, 0.25, 0.75, 1.0]] * 4, atol=1e-6)
    stripes = np.tile(np.array([0.0, 1.0], dtype=np.float32), 4)[None, None, :, None].repeat(8, axis=1)
    down = resize_images(stripes, 4)  # 1-pixel stripes shrunk 2x average to grey instead of aliasing
    assert down.shape == (1, 4, 4, 1)
    assert np.abs(down[0, :, 1:3, 0] - 0.5).max() < 0.05
    np.testing.assert_allclose(resize_images(np.ones((2, 28, 28, 3), np.float32), 11), np.ones((2, 11, 11, 3)),
                               atol=1e-6)


def test_image_size_resizes_once_at_load_time_and_keeps_the_split():
    small = data.load("digits", {"shape": "image", "image_size": 16})
    assert small.input_shape == (16, 16, 1) and small.val.x.shape == (300, 16, 16, 1)
    assert small.train.x.min() >= 0.0 and small.train.x.max() <= 1.0
    np.testing.assert_array_equal(small.test.y, data.load("digits").test.y)
    assert data.load("digits", {"image_size": 16}).input_shape == (256,)  # flat: the resized image, flattened


def test_mnist5k_is_28x28x1_real_digits_with_a_stratified_3000_1000_1000_split():
    d = data.load("mnist5k")
    assert d.input_shape == (28, 28, 1) and d.num_classes == 10 and d.task == "classification"
    assert d.train.x.shape == (3000, 28, 28, 1) and d.train.x.dtype == np.float32
    assert d.train.x.min() == 0.0 and d.train.x.max() == 1.0
    # 500 images per class, split exactly 300/100/100 per class.
    assert np.bincount(d.train.y, minlength=10).tolist() == [300] * 10
    assert np.bincount(d.val.y, minlength=10).tolist() == [100] * 10
    assert np.bincount(d.test.y, minlength=10).tolist() == [100] * 10
    # Real handwriting: a digit's ink covers a good part of the image, the border stays blank.
    assert 0.08 < (d.train.x > 0.5).mean() < 0.25 and d.train.x[:, 0, :, :].max() == 0.0


def test_train_size_is_the_stratified_subset_option_of_the_image_sets():
    full = data.load("mnist5k")
    sub = data.load("mnist5k", {"train_size": 200, "image_size": 14})
    assert sub.input_shape == (14, 14, 1) and sub.train.x.shape == (200, 14, 14, 1)
    assert np.bincount(sub.train.y, minlength=10).tolist() == [20] * 10
    assert len(sub.unlabeled) == 2800
    np.testing.assert_array_equal(sub.val.y, full.val.y)
    np.testing.assert_array_equal(sub.test.y, full.test.y)


def test_mnist1d_n_val_gives_the_papers_4000_training_signals():
    # The package keeps 80% of num_samples for training; n_val is carved from that part, the test split untouched.
    d = data.load("mnist1d", {"num_samples": 6250, "n_val": 1000})
    assert (len(d.train), len(d.val), len(d.test)) == (4000, 1000, 1250)
    assert (len(data.load("mnist1d").train), len(data.load("mnist1d").val)) == (3000, 1000)  # default: as many as test
    with pytest.raises(ValueError, match="n_val = 5000 leaves no training rows"):
        data.load("mnist1d", {"n_val": 5000})


def test_mnist1d_is_generated_from_its_seed_cached_and_leaves_global_rngs_alone(tmp_path, monkeypatch):
    import random

    from dlbench.data import mnist_1d

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    np.random.seed(7)
    random.seed(7)
    before = (np.random.get_state()[1].copy(), random.getstate())
    entry = data.get("mnist1d")
    a = entry.load(entry.options(data_seed=1))  # generated
    after = (np.random.get_state()[1], random.getstate())
    np.testing.assert_array_equal(before[0], after[0])
    assert before[1] == after[1]
    assert a.input_shape == (40, 1) and a.num_classes == 10
    assert (len(a.train), len(a.val), len(a.test)) == (3000, 1000, 1000)
    assert a.train.x.shape == (3000, 40, 1) and a.train.x.dtype == np.float32
    assert set(np.unique(a.test.y)) == set(range(10))
    assert np.bincount(a.val.y, minlength=10).min() >= 95  # stratified from the package's 4000 training rows
    assert mnist_1d.cache_path(entry.options(data_seed=1)).is_file()
    assert len(list((tmp_path / "dlbench").glob("mnist1d-*.npz"))) == 1
    b = entry.load(entry.options(data_seed=1))  # read back from the cache: what the generator made
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    c = entry.load(entry.options(data_seed=2))
    assert not np.array_equal(a.test.x, c.test.x)
    assert len(list((tmp_path / "dlbench").glob("mnist1d-*.npz"))) == 2


def test_every_dataset_is_listed_with_where_its_data_comes_from():
    assert data.names() == ["adding", "cifar10", "copy_memory", "digits", "fashion_mnist", "grid25", "mnist", "mnist1d",
                            "mnist5k", "retrieve", "reverse", "ring8", "sort", "spirals"]
    for name in data.names():
        desc = data.get(name).description
        assert ("offline" in desc) != ("download on first use" in desc), (name, desc)


# === keras.datasets: downloaded on first use, a clear error offline ===


@pytest.mark.parametrize("name, folder, files, url", [
    ("mnist", "datasets", ["mnist.npz"], "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"),
    ("fashion_mnist", "datasets/fashion-mnist", ["train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"],
     "https://storage.googleapis.com/tensorflow/tf-keras-datasets/train-images-idx3-ubyte.gz"),
    ("cifar10", "datasets", ["cifar-10-batches-py-target_archive"],
     "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
])
def test_a_missing_keras_dataset_file_names_the_file_the_folder_and_the_url(tmp_path, monkeypatch, name, folder,
                                                                             files, url):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("DLBENCH_OFFLINE", "1")
    with pytest.raises(data.DatasetUnavailable) as e:
        data.load(name)
    msg = str(e.value)
    assert str(tmp_path / folder) in msg and url in msg and "DLBENCH_OFFLINE is set" in msg
    assert all(f in msg for f in files)


def test_an_unreachable_download_fails_fast_without_calling_keras(tmp_path, monkeypatch):
    import dataclasses
    import time

    from dlbench.data import keras_datasets

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for var in ("DLBENCH_OFFLINE", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    dead = "http://127.0.0.1:9/mnist.npz"  # the discard port: nothing listens, the connection is refused at once
    monkeypatch.setitem(keras_datasets.SOURCES, "mnist",
                        dataclasses.replace(keras_datasets.SOURCES["mnist"], files=(("mnist.npz", dead),)))
    start = time.perf_counter()
    with pytest.raises(data.DatasetUnavailable, match=r"mnist\.npz not found in .*this machine cannot download it"):
        data.get("mnist").load(data.get("mnist").options())
    assert time.perf_counter() - start < keras_datasets.PROBE_TIMEOUT
    assert not (tmp_path / "datasets" / "mnist.npz").exists()


@pytest.mark.e2e
def test_dlbench_run_exits_2_naming_the_missing_file_before_creating_any_store(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("DLBENCH_OFFLINE", "1")
    spec = write_spec(tmp_path, (SPECS / "tiny.toml").read_text().replace('{ name = "spirals", n = 300 }',
                                                                          '{ name = "mnist", train_size = 500 }'))
    storage, mlruns = tmp_path / "studies", tmp_path / "mlruns"
    proc = dlbench("run", str(spec), "--storage", str(storage), "--tracking-uri", f"sqlite:///{mlruns}/mlflow.db",
                   check=False, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "dlbench: dataset unavailable: dataset 'mnist'" in proc.stderr
    assert f"mnist.npz not found in {tmp_path / 'keras' / 'datasets'}" in proc.stderr
    assert "Traceback" not in proc.stderr
    # Data are loaded while the spec is checked, before anything is created in the stores.
    assert not storage.exists() and not mlruns.exists()


def _idx_gz(path, array: np.ndarray) -> None:
    """Write `array` (uint8) in the gzipped IDX layout keras.datasets.fashion_mnist reads (8- or 16-byte header)."""
    import gzip

    header = b"\0" * (16 if array.ndim == 3 else 8)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.e2e
def test_a_cached_keras_dataset_loads_through_keras_without_network(tmp_path):
    # Fashion-MNIST's files carry no hash in Keras, so small stand-ins in an empty KERAS_HOME exercise the real
    # keras.datasets code path offline: 60000/10000 images whose one lit pixel tells the label.
    folder = tmp_path / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    for n, prefix in ((60000, "train"), (10000, "t10k")):
        y = np.arange(n) % 10
        x = np.zeros((n, 28, 28), np.uint8)
        x[np.arange(n), 14, y] = 255
        _idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
        _idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", x)
    code = ("from dlbench import data; import numpy as np\n"
            "d = data.load('fashion_mnist')\n"
            "lit = lambda s: bool((s.x[:, 14, :, 0].argmax(axis=1) == s.y).all())  # each image still has its label\n"
            "print(d.input_shape, len(d.train), len(d.val), len(d.test), d.train.x.dtype, float(d.train.x.max()),\n"
            "      np.bincount(d.val.y).tolist() == [500] * 10, lit(d.train), lit(d.val), lit(d.test))")
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "DLBENCH_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "(28, 28, 1) 55000 5000 10000 float32 1.0 True True True True"
