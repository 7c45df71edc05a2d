"""Datasets: fixed stratified splits, scaling, and the small-training-set option."""

from __future__ import annotations

import numpy as np

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
    import pytest

    with pytest.raises(ValueError, match="either train_size or labels_per_class, not both"):
        data.load("digits", {"labels_per_class": 20, "train_size": 300})
    with pytest.raises(ValueError, match=r"labels_per_class=500 is more than the training rows of class \d \(116\)"):
        data.load("digits", {"labels_per_class": 500})
    assert data.load("digits").unlabeled is None
