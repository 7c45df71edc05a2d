"""Sequence data: the generated sequence tasks (adding, copy memory, reverse, sort, retrieve) and the sequential
views of the image datasets (rows, pixels, permuted pixels)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import SPECS, write_spec
from dlbench import data
from dlbench.data import sequences
from dlbench.data._common import DATASET_TASKS, IGNORE, PERMUTATION_SEED, pixel_permutation

SEQUENCE_TASKS = ["adding", "copy_memory", "reverse", "sort", "retrieve"]


def fresh(name: str, **options) -> data.DatasetInfo:
    """Generate again, past the registry's cache of loaded datasets."""
    entry = data.get(name)
    return entry.load(entry.options(**options))


# === Every generated task ===


def test_the_sequence_tasks_are_registered_generated_offline_with_their_task():
    expected = {"adding": ("regression", (100, 2), 0, 0), "copy_memory": ("tagging", (120,), 9, 10),
                "reverse": ("tagging", (20,), 10, 11), "sort": ("tagging", (20,), 10, 11),
                "retrieve": ("classification", (21,), 10, 31)}
    for name, (task, shape, classes, vocab) in expected.items():
        d = data.load(name)
        assert (d.task, d.input_shape, d.num_classes, d.vocab) == (task, shape, classes, vocab), name
        assert d.task in DATASET_TASKS and "(generated, offline)" in data.get(name).description
        assert (len(d.train), len(d.val), len(d.test)) == (10000, 1000, 1000) and d.unlabeled is None
        assert d.train.x.shape[1:] == shape


@pytest.mark.parametrize("name", SEQUENCE_TASKS)
def test_a_task_is_fixed_by_its_split_seed_and_another_seed_draws_other_examples(name):
    a, b = fresh(name, n=50, n_val=20, n_test=20), fresh(name, n=50, n_val=20, n_test=20)
    for s, t in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        np.testing.assert_array_equal(s.x, t.x)
        np.testing.assert_array_equal(s.y, t.y)
    c = fresh(name, n=50, n_val=20, n_test=20, split_seed=1)
    assert not np.array_equal(a.train.x, c.train.x) and not np.array_equal(a.test.x, c.test.x)
    # The three splits come from streams of their own: no example repeats across them.
    assert not np.array_equal(a.val.x, a.test.x) and not np.array_equal(a.train.x[:20], a.val.x)


@pytest.mark.parametrize("name", SEQUENCE_TASKS)
def test_changing_n_leaves_the_validation_and_test_examples_unchanged(name):
    small, large = fresh(name, n=10, n_val=30, n_test=40), fresh(name, n=500, n_val=30, n_test=40)
    assert (len(small.train), len(large.train)) == (10, 500)
    np.testing.assert_array_equal(small.val.x, large.val.x)
    np.testing.assert_array_equal(small.val.y, large.val.y)
    np.testing.assert_array_equal(small.test.x, large.test.x)
    np.testing.assert_array_equal(small.test.y, large.test.y)


@pytest.mark.parametrize("name", SEQUENCE_TASKS)
def test_generation_leaves_numpys_global_generator_alone(name):
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    fresh(name, n=20, n_val=5, n_test=5)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_the_spec_checker_reports_bad_sequence_options(tmp_path):
    from dlbench import spaces
    from dlbench.spec import SpecError

    tiny = (SPECS / "tiny.toml").read_text()
    # A length below the adding task's minimum of 2 is named with its bound.
    spec = write_spec(tmp_path, tiny.replace('{ name = "spirals", n = 300 }', '{ name = "adding", length = 1 }'))
    with pytest.raises(SpecError, match=r"dataset\.length.*>= 2"):
        spaces.load(spec)
    # The stratifying options of the fixed datasets are not options of a generated task.
    spec = write_spec(tmp_path, tiny.replace('{ name = "spirals", n = 300 }', '{ name = "sort", train_size = 100 }'))
    with pytest.raises(SpecError, match=r"dataset\.train_size.*unknown option of dataset 'sort'"):
        spaces.load(spec)
    # A combination refused by the options names the option and the shape it needs.
    spec = write_spec(tmp_path, tiny.replace('{ name = "spirals", n = 300 }',
                                             '{ name = "digits", shape = "rows", permute = true }'))
    with pytest.raises(SpecError, match=r'field `dataset`: permute = true .* shape = "pixels"; got shape = "rows"'):
        spaces.load(spec)


# === Adding ===


def test_adding_inputs_are_values_and_two_markers_one_in_each_half():
    d = fresh("adding", n=2000, n_val=10, n_test=10, length=7)
    x = d.train.x
    assert x.shape == (2000, 7, 2) and x.dtype == np.float32
    assert d.train.y.shape == (2000, 1) and d.train.y.dtype == np.float32
    assert x[..., 0].min() >= 0.0 and x[..., 0].max() < 1.0
    # Exactly two markers per row, one in the first half [0, 3) and one in the second [3, 7).
    marker = x[..., 1]
    assert set(np.unique(marker)) == {0.0, 1.0}
    assert (marker.sum(axis=1) == 2).all()
    assert (marker[:, :3].sum(axis=1) == 1).all() and (marker[:, 3:].sum(axis=1) == 1).all()
    # Every step of each half gets marked.
    assert (marker.sum(axis=0) > 0).all()


def test_adding_target_is_the_sum_of_the_two_marked_values_by_hand():
    d = fresh("adding", n=3, n_val=1, n_test=1, length=4)
    for x, y in zip(d.train.x, d.train.y):
        first, second = np.flatnonzero(x[:, 1])
        assert first in (0, 1) and second in (2, 3)
        assert y[0] == np.float32(x[first, 0] + x[second, 0])
    # The first training example of split_seed 0, pinned: a change of generator would change every result.
    x, y = d.train.x[0], d.train.y[0, 0]
    assert np.flatnonzero(x[:, 1]).tolist() == [0, 2]
    np.testing.assert_allclose(x[:, 0], [0.47319, 0.51182, 0.75517, 0.95046], atol=1e-5)
    assert y == pytest.approx(0.47319 + 0.75517, abs=2e-5)


def test_predicting_the_constant_1_on_adding_gives_the_baseline_mse_of_one_sixth():
    assert sequences.ADDING_BASELINE_MSE == pytest.approx(0.16667, abs=1e-5)
    d = fresh("adding", n=1, n_val=1, n_test=50000, length=20)
    mse = float(np.mean((d.test.y - 1.0) ** 2))
    assert mse == pytest.approx(1 / 6, abs=0.01)
    assert float(d.test.y.mean()) == pytest.approx(1.0, abs=0.01)


# === Copy memory ===


def test_copy_memory_small_example_position_by_position():
    d = fresh("copy_memory", n=20, n_val=5, n_test=5, length=2, delay=3, alphabet=3)
    # Token ids: 0 blank, 1..3 symbols, 4 the delimiter; classes 0 (blank) and 1..3; T + 2 * length = 7 steps.
    assert (d.vocab, d.num_classes, d.input_shape, d.task) == (5, 4, (7,), "tagging")
    assert d.train.x.shape == d.train.y.shape == (20, 7) and d.train.y.dtype == np.int32
    for x, y in zip(d.train.x, d.train.y):
        s1, s2 = x[0], x[1]
        assert 1 <= s1 <= 3 and 1 <= s2 <= 3
        # Input: the two symbols, T - 1 = 2 blanks, then the delimiter on the last length + 1 = 3 steps.
        assert x.tolist() == [s1, s2, 0, 0, 4, 4, 4]
        # Target: blank everywhere but the last two steps, which recall the symbols in order; no IGNORE.
        assert y.tolist() == [0, 0, 0, 0, 0, s1, s2]
    assert (d.train.y != IGNORE).all()
    # All three symbols occur in both remembered positions.
    assert set(d.train.x[:, 0]) == set(d.train.x[:, 1]) == {1, 2, 3}


def test_copy_memory_defaults_and_the_memoryless_baseline():
    d = data.load("copy_memory")
    # Bai et al.: 10 symbols from 8, T = 100 here: 120 steps, the delimiter at step 109 and after.
    x = d.train.x
    assert x.shape == (10000, 120) and (x[:, 10:109] == 0).all() and (x[:, 109:] == 9).all()
    assert x[:, :10].min() == 1 and x[:, :10].max() == 8
    np.testing.assert_array_equal(d.train.y[:, 110:], x[:, :10])
    assert (d.train.y[:, :110] == 0).all()
    # Bai et al.'s baseline 10 ln 8 / (T + 20): 0.0204 at T = 1000, 0.1733 at T = 100.
    assert sequences.copy_memory_baseline_loss(10, 1000, 8) == pytest.approx(0.020386, abs=1e-6)
    assert sequences.copy_memory_baseline_loss(10, 100, 8) == pytest.approx(10 * math.log(8) / 120)
    # It is the cross-entropy of blank where the target is blank, uniform over the 8 symbols on the recall steps.
    probs = np.zeros((120, 9))
    probs[:110, 0] = 1.0
    probs[110:, 1:] = 1 / 8
    y = d.val.y
    loss = -np.log(probs[np.arange(120)[None, :], y]).mean()
    assert loss == pytest.approx(sequences.copy_memory_baseline_loss(10, 100, 8))


# === Reverse, sort, retrieve ===


@pytest.mark.parametrize("name, order", [("reverse", lambda s: s[::-1]), ("sort", sorted)])
def test_reverse_and_sort_targets_are_the_ordered_symbols_minus_1_after_an_ignored_first_half(name, order):
    d = fresh(name, n=50, n_val=5, n_test=5, length=4, vocab=5)
    assert (d.vocab, d.num_classes, d.input_shape, d.task) == (6, 5, (8,), "tagging")
    assert d.train.x.dtype == np.int32 and d.train.y.shape == (50, 8)
    for x, y in zip(d.train.x, d.train.y):
        symbols = x[:4].tolist()
        assert all(1 <= s <= 5 for s in symbols) and x[4:].tolist() == [0, 0, 0, 0]  # query tokens
        assert y[:4].tolist() == [IGNORE] * 4
        assert y[4:].tolist() == [s - 1 for s in order(symbols)]
    assert set(d.train.x[:, :4].ravel()) == {1, 2, 3, 4, 5}


def test_reverse_and_sort_read_the_same_symbols_and_the_first_example_is_pinned():
    rev, srt = fresh("reverse", n=5, n_val=1, n_test=1, length=4), fresh("sort", n=5, n_val=1, n_test=1, length=4)
    np.testing.assert_array_equal(rev.train.x, srt.train.x)
    assert rev.train.x[0].tolist() == [9, 1, 2, 3, 0, 0, 0, 0]
    assert rev.train.y[0].tolist() == [-1, -1, -1, -1, 2, 1, 0, 8]
    assert srt.train.y[0].tolist() == [-1, -1, -1, -1, 0, 1, 2, 8]


def test_retrieve_target_is_the_symbol_at_the_cued_position():
    d = fresh("retrieve", n=200, n_val=5, n_test=5, length=5, vocab=3)
    # Token ids: 1..3 symbols, 4..8 the cues of positions 0..4.
    assert (d.vocab, d.num_classes, d.input_shape, d.task) == (9, 3, (6,), "classification")
    assert d.train.x.shape == (200, 6) and d.train.y.shape == (200,) and d.train.y.dtype == np.int32
    for x, y in zip(d.train.x, d.train.y):
        assert all(1 <= s <= 3 for s in x[:5])
        p = x[5] - (3 + 1)
        assert 0 <= p < 5
        assert y == x[p] - 1


def test_retrieve_cues_every_position_about_equally_often():
    d = data.load("retrieve")  # 20 positions, 10000 training examples: 500 expected per position
    cued = d.train.x[:, 20] - 11
    counts = np.bincount(cued, minlength=20)
    assert len(counts) == 20 and counts.min() > 400 and counts.max() < 600
    # The targets are the 10 classes, each about a tenth of the examples.
    classes = np.bincount(d.train.y, minlength=10)
    assert len(classes) == 10 and classes.min() > 850 and classes.max() < 1150


# === Sequential views of the image datasets ===


def test_digits_rows_and_pixels_are_the_image_read_row_by_row_and_pixel_by_pixel():
    img, rows, pixels = (data.load("digits", {"shape": s}) for s in ("image", "rows", "pixels"))
    assert (rows.input_shape, pixels.input_shape) == ((8, 8), (64, 1))
    assert rows.train.x.shape == (1197, 8, 8) and pixels.test.x.shape == (300, 64, 1)
    assert pixels.train.x.dtype == np.float32
    # The same rows in every split whatever the shape: the same labels, and the same images.
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(rows, s).y, getattr(img, s).y)
        np.testing.assert_array_equal(getattr(pixels, s).y, getattr(img, s).y)
    np.testing.assert_array_equal(rows.train.x, img.train.x[..., 0])
    # Pixels are in row-major order: exactly the image reshaped.
    np.testing.assert_array_equal(pixels.val.x, img.val.x.reshape(300, 64, 1))
    # With image_size, the resized image.
    assert data.load("digits", {"shape": "pixels", "image_size": 4}).input_shape == (16, 1)
    assert data.load("digits", {"shape": "rows", "image_size": 16}).input_shape == (16, 16)


def test_permute_is_one_fixed_permutation_of_the_pixels_for_every_load_split_and_seed():
    pixels = data.load("digits", {"shape": "pixels"})
    permuted = fresh("digits", shape="pixels", permute=True)
    perm = pixel_permutation(64)
    assert PERMUTATION_SEED == 1234
    assert sorted(perm.tolist()) == list(range(64)) and (perm != np.arange(64)).sum() > 50
    assert perm[:5].tolist() == [47, 24, 10, 62, 54]  # pinned: the permutation never changes
    for s in ("train", "val", "test"):  # the same permutation in every split, the same rows
        np.testing.assert_array_equal(getattr(permuted, s).x, getattr(pixels, s).x[:, perm])
        np.testing.assert_array_equal(getattr(permuted, s).y, getattr(pixels, s).y)
    # Each image keeps its pixels, reordered.
    np.testing.assert_array_equal(np.sort(permuted.train.x, axis=1), np.sort(pixels.train.x, axis=1))
    # The same across loads, and independent of split_seed.
    np.testing.assert_array_equal(fresh("digits", shape="pixels", permute=True).test.x, permuted.test.x)
    other_split = fresh("digits", shape="pixels", permute=True, split_seed=3)
    np.testing.assert_array_equal(other_split.test.x, fresh("digits", shape="pixels", split_seed=3).test.x[:, perm])


@pytest.mark.parametrize("name, shape", [("digits", "rows"), ("digits", "flat"), ("mnist5k", "image")])
def test_permute_needs_shape_pixels(name, shape):
    with pytest.raises(ValueError, match=f'permute = true permutes the pixel sequence: it needs shape = "pixels"; '
                                         f'got shape = "{shape}"'):
        data.load(name, {"shape": shape, "permute": True})


def test_mnist5k_rows_and_pixels_are_sequential_mnist_with_the_same_split():
    img = data.load("mnist5k")
    rows, pixels = data.load("mnist5k", {"shape": "rows"}), data.load("mnist5k", {"shape": "pixels"})
    assert (rows.input_shape, pixels.input_shape) == ((28, 28), (784, 1))
    assert rows.train.x.shape == (3000, 28, 28) and pixels.val.x.shape == (1000, 784, 1)
    np.testing.assert_array_equal(pixels.test.x, img.test.x.reshape(1000, 784, 1))
    np.testing.assert_array_equal(rows.train.y, img.train.y)
    permuted = data.load("mnist5k", {"shape": "pixels", "permute": True})
    np.testing.assert_array_equal(permuted.val.x, pixels.val.x[:, pixel_permutation(784)])
