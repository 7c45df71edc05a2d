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


def test_paired_test_with_identical_differences_is_undefined_not_tiny():
    # Every seed 0.01 better: zero spread of the differences; a t statistic would be infinite, p printed as < 0.0001.
    c = stats.compare([0.91, 0.93, 0.95], [0.90, 0.92, 0.94])
    assert math.isnan(c.p_paired) and "paired test undefined" in c.note
    assert c.p_welch == pytest.approx(st.ttest_ind([0.91, 0.93, 0.95], [0.90, 0.92, 0.94], equal_var=False).pvalue)
    assert stats.compare([0.9, 0.8], [0.9, 0.8]).p_paired == 1.0


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
    assert stats.verdict(c, 0.2, higher_is_better=higher) == "inconclusive"
    assert stats.verdict(c, 0.2, higher_is_better=higher, p_tost_adjusted=0.01) == "equivalent"


def test_expected_max_by_hand_and_its_shape():
    assert stats.expected_max([0, 1], 2) == pytest.approx([0.5, 0.75])
    vals = [0.2, 0.9, 0.5, 0.7, math.nan]
    e = stats.expected_max(vals, 10)
    assert e[0] == pytest.approx(np.mean([0.2, 0.9, 0.5, 0.7]))  # one trial: the mean
    assert all(x <= y for x, y in zip(e, e[1:])) and e[-1] <= 0.9
    low = stats.expected_max([0, 1], 2, higher_is_better=False)
    assert low == pytest.approx([0.5, 0.25])
    assert stats.expected_max([], 3) == []


def test_tost_tells_equivalent_from_too_few_seeds_to_tell():
    # Two arms 0.001 apart with a spread of 0.001 over 10 seeds: equivalent within one point (0.01) ...
    rng = np.random.default_rng(0)
    base = 0.95 + 0.001 * rng.standard_normal(10)
    close = base + 0.001
    c = stats.compare(close, base, margin=0.01)
    assert c.p_welch < 1 and c.p_tost < 1e-6
    assert stats.verdict(c, 0.3, higher_is_better=True, p_tost_adjusted=c.p_tost) == "equivalent"
    # ... while 3 seeds with a spread of 0.03 can show neither a difference nor equivalence: inconclusive.
    noisy = stats.compare([0.95, 0.99, 0.93], [0.94, 0.97, 0.92], margin=0.01)
    assert noisy.p_welch > 0.05 and noisy.p_tost > 0.05
    assert stats.verdict(noisy, noisy.p_welch, higher_is_better=True, p_tost_adjusted=noisy.p_tost) == "inconclusive"
    # A real difference larger than the margin is never equivalent.
    far = stats.compare(base + 0.05, base, margin=0.01)
    assert far.p_tost > 0.5


def test_tost_is_the_larger_of_two_one_sided_welch_tests():
    a, b, margin = np.array([0.50, 0.52, 0.51, 0.53]), np.array([0.50, 0.49, 0.51, 0.50]), 0.05
    lower = st.ttest_ind(a + margin, b, equal_var=False, alternative="greater").pvalue
    upper = st.ttest_ind(a - margin, b, equal_var=False, alternative="less").pvalue
    assert stats.tost(a, b, margin) == pytest.approx(max(lower, upper))
    assert math.isnan(stats.tost(a, b, math.nan))


def test_detectable_difference_shrinks_with_seeds_and_matches_power():
    rng = np.random.default_rng(1)
    few = stats.detectable(rng.normal(0, 1, 3), rng.normal(0, 1, 3))
    many = stats.detectable(rng.normal(0, 1, 30), rng.normal(0, 1, 30))
    assert few > 2 * many
    # With known equal SDs of 1 and n = 30 per arm, (t(.975, df) + t(.8, df)) * sqrt(2/30) is about 0.73.
    a, b = np.array([-1.0, 1.0] * 15), np.array([-1.0, 1.0] * 15)
    se = math.sqrt(a.var(ddof=1) / 30 + b.var(ddof=1) / 30)
    assert stats.detectable(a, b) == pytest.approx((st.t.ppf(0.975, 58) + st.t.ppf(0.8, 58)) * se)


def test_bounded_intervals_stay_inside_the_bounds():
    accuracies = [1.0, 1.0, 0.98]  # the t interval of these runs past 1
    t = stats.describe(accuracies)
    assert t.ci_high > 1.0
    b = stats.describe(accuracies, bounded=True)
    assert 0.98 <= b.ci_low <= b.mean <= b.ci_high <= 1.0
    tiny = stats.describe([0.0002, 0.0001, 0.0004], bounded=True)  # an MSE: never below 0
    assert 0.0001 <= tiny.ci_low and tiny.ci_high <= 0.0004
    same = stats.describe([0.5, 0.5], bounded=True)
    assert (same.ci_low, same.ci_high) == (0.5, 0.5)


def test_the_rank_test_cannot_reach_alpha_with_three_seeds():
    assert stats.min_rank_p(3, 3) == pytest.approx(0.1)
    assert stats.min_rank_p(4, 4) == pytest.approx(2 / 70)
    assert st.mannwhitneyu([4, 5, 6], [1, 2, 3], alternative="two-sided").pvalue == pytest.approx(0.1)


def test_a_spec_whose_seeds_cannot_reach_alpha_gets_a_warning(tmp_path):
    import warnings

    import dlbench
    from conftest import SPECS
    from dlbench.spec import SpecWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dlbench.load_spec(SPECS / "tiny.toml", seeds=3)
        dlbench.load_spec(SPECS / "tiny.toml", seeds=5)
    found = [w.message for w in caught if issubclass(w.category, SpecWarning)]
    assert len(found) == 1 and found[0].field == "seeds" and "p = 0.1" in found[0].message
    assert "4 seeds can" in found[0].message
