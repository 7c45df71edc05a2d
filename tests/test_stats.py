"""Statistics against hand-checked numbers and scipy itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from dlbench import stats


def test_describe_mean_std_and_t_interval():
    s = stats.describe([1, 2, 3, 4])
    assert (s.n, s.mean) == (4, 2.5)
    assert s.std == pytest.approx(1.290994, abs=1e-6)
    # 2.5 -+ t(0.975, 3) * 1.2910 / 2 = 2.5 -+ 3.182446 * 0.645497
    assert (s.ci_low, s.ci_high) == (pytest.approx(0.445739, abs=1e-6), pytest.approx(4.554261, abs=1e-6))
    one = stats.describe([0.9])
    assert one.n == 1 and one.mean == 0.9 and math.isnan(one.std) and math.isnan(one.ci_low)
    assert stats.describe([]).n == 0


def test_compare_matches_scipy_welch_rank_and_paired():
    a = [0.91, 0.93, 0.92, 0.95, 0.94]
    b = [0.88, 0.90, 0.89, 0.87, 0.91]
    c = stats.compare(a, b)
    ref = st.ttest_ind(a, b, equal_var=False)
    assert c.diff == pytest.approx(np.mean(a) - np.mean(b))
    assert c.p_welch == pytest.approx(ref.pvalue)
    lo, hi = ref.confidence_interval(0.95)
    assert (c.diff_ci_low, c.diff_ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert c.p_rank == pytest.approx(st.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    assert c.p_paired == pytest.approx(st.ttest_rel(a, b).pvalue)
    assert c.n_pairs == 5 and c.note == ""


def test_paired_test_matches_seeds_by_id():
    # Seeds 0..2 in the arm, 1..3 in the baseline: only seeds 1 and 2 pair.
    c = stats.compare([1.0, 2.0, 4.0], [2.5, 3.0, 9.0], arm_seeds=[0, 1, 2], base_seeds=[1, 2, 3])
    assert c.n_pairs == 2
    assert c.p_paired == pytest.approx(st.ttest_rel([2.0, 4.0], [2.5, 3.0]).pvalue)


def test_hedges_g_by_hand():
    # means 3 and 1, both sd 1 (pooled 1) -> d = 2; J = 1 - 3 / (4 * 6 - 9) = 0.8 -> g = 1.6
    assert stats.hedges_g([2, 3, 4], [0, 1, 2]) == pytest.approx(1.6)


def test_too_few_repeats_and_zero_variance():
    c = stats.compare([0.9], [0.8, 0.85])
    assert math.isnan(c.p_welch) and "n < 2" in c.note
    assert stats.verdict(c, math.nan, higher_is_better=True) == "too few repeats"
    z = stats.compare([0.1, 0.1, 0.1], [0.1, 0.1, 0.1])
    assert z.p_welch == 1.0 and "zero variance" in z.note


def test_one_arm_with_identical_values_is_tested_without_warnings():
    # Every seed of an arm can score the same test accuracy (a float32 value); Welch's test is still defined.
    import warnings

    base = [0.97, 0.99, 0.9766]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = stats.compare([0.9666666388511658] * 3, base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = st.ttest_ind([0.9666666388511658] * 3, base, equal_var=False).pvalue
    assert c.p_welch == pytest.approx(expected)


def test_holm_adjusts_in_original_order():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = stats.holm([0.02, math.nan, 0.5])
    assert out[0] == pytest.approx(0.04) and math.isnan(out[1]) and out[2] == pytest.approx(0.5)
    assert stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("higher, diff, expected", [(True, 0.05, "better"), (True, -0.05, "worse"),
                                                    (False, -0.05, "better"), (False, 0.05, "worse")])
def test_verdict_follows_the_metric_direction(higher, diff, expected):
    base = [1.0, 1.1, 0.9, 1.05, 0.95]
    c = stats.compare([x + diff * 10 for x in base], base)
    assert stats.verdict(c, 0.001, higher_is_better=higher) == expected
    assert stats.verdict(c, 0.2, higher_is_better=higher) == "no significant difference"


def test_expected_max_by_hand_and_its_shape():
    assert stats.expected_max([0, 1], 2) == pytest.approx([0.5, 0.75])
    vals = [0.2, 0.9, 0.5, 0.7, math.nan]
    e = stats.expected_max(vals, 10)
    assert e[0] == pytest.approx(np.mean([0.2, 0.9, 0.5, 0.7]))  # one trial: the mean
    assert all(x <= y for x, y in zip(e, e[1:])) and e[-1] <= 0.9
    low = stats.expected_max([0, 1], 2, higher_is_better=False)
    assert low == pytest.approx([0.5, 0.25])
    assert stats.expected_max([], 3) == []
