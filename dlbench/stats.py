"""Statistics over seed repeats: summaries, tests against a baseline (difference and equivalence), the smallest
difference the seeds could detect, Holm correction, expected best score."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Sequence

import numpy as np
from scipy import stats as st

from dlbench.spec import Experiment, SpecWarning

NAN = math.nan


@dataclasses.dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


@dataclasses.dataclass(frozen=True)
class Comparison:
    n_arm: int
    n_base: int
    diff: float  # mean(arm) - mean(base)
    diff_ci_low: float  # Welch-Satterthwaite 95% interval of the difference
    diff_ci_high: float
    p_welch: float
    p_rank: float  # Mann-Whitney U, two-sided
    n_pairs: int
    p_paired: float  # paired t-test over matched seeds
    hedges_g: float
    note: str
    margin: float = NAN  # the equivalence margin the TOST used (absolute, in the metric's units)
    p_tost: float = NAN  # Welch two one-sided tests of |diff| < margin (Schuirmann 1987); small = equivalent
    detectable: float = NAN  # the smallest |diff| a Welch test at these seeds detects with 80% power at alpha


def _clean(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(list(values), dtype=float)
    return a[~np.isnan(a)]


def describe(values: Sequence[float], confidence: float = 0.95, bounded: bool = False) -> Summary:
    """n, mean, sample std (ddof=1) and a confidence interval of the mean (nan where n < 2).

    The interval is Student's t, or with `bounded` (a metric with hard bounds: an accuracy in [0, 1], an error
    >= 0) the percentile bootstrap of the mean (scipy.stats.bootstrap, 9,999 resamples, fixed seed), which stays
    inside the values' range and so inside the metric's bounds.
    """
    a = _clean(values)
    n = len(a)
    if n == 0:
        return Summary(0, NAN, NAN, NAN, NAN)
    mean = float(a.mean())
    if n < 2:
        return Summary(1, mean, NAN, NAN, NAN)
    sd = float(a.std(ddof=1))
    if bounded:
        if np.ptp(a) == 0:
            return Summary(n, mean, sd, mean, mean)
        ci = st.bootstrap((a,), np.mean, confidence_level=confidence, n_resamples=9999, method="percentile",
                          rng=np.random.default_rng(0)).confidence_interval
        return Summary(n, mean, sd, float(ci.low), float(ci.high))
    half = float(st.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half)


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """Standardised mean difference (a - b) / pooled SD, times the small-sample correction J = 1 - 3/(4N - 9)."""
    a, b = _clean(a), _clean(b)
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return NAN
    pooled = math.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    if pooled == 0:
        return NAN if a.mean() != b.mean() else 0.0
    return float((a.mean() - b.mean()) / pooled * (1 - 3 / (4 * (n1 + n2) - 9)))


def _welch_se_df(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Standard error of mean(a) - mean(b) and its Welch-Satterthwaite degrees of freedom."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0, float(len(a) + len(b) - 2)
    return se, (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))


def welch_ci(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The Welch confidence interval of mean(a) - mean(b), from scipy (a point where both arms are constant)."""
    diff = float(a.mean() - b.mean())
    if _welch_se_df(a, b)[0] == 0:
        return diff, diff
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        ci = st.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def tost(a: np.ndarray, b: np.ndarray, margin: float) -> float:
    """p-value of Welch's two one-sided tests that -margin < mean(a) - mean(b) < margin: the larger of the two
    one-sided p-values (H0: diff <= -margin; H0: diff >= margin). Small means equivalent within the margin."""
    if not margin > 0 or len(a) < 2 or len(b) < 2:
        return NAN
    diff = float(a.mean() - b.mean())
    if _welch_se_df(a, b)[0] == 0:
        return 0.0 if abs(diff) < margin else 1.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        lower = st.ttest_ind(a + margin, b, equal_var=False, alternative="greater").pvalue
        upper = st.ttest_ind(a - margin, b, equal_var=False, alternative="less").pvalue
    return float(max(lower, upper))


def detectable(a: np.ndarray, b: np.ndarray, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest |mean(a) - mean(b)| a two-sided Welch test at `alpha` detects with probability `power`, at
    these seeds and the variances they show: (t(1 - alpha/2) + t(power)) x SE, on Welch's degrees of freedom."""
    if len(a) < 2 or len(b) < 2:
        return NAN
    se, df = _welch_se_df(a, b)
    return float((st.t.ppf(1 - alpha / 2, df) + st.t.ppf(power, df)) * se)


def min_rank_p(n_arm: int, n_base: int) -> float:
    """The smallest two-sided p-value the Mann-Whitney U test can give with these many seeds (complete
    separation): 2 / C(n_arm + n_base, n_arm)."""
    return min(1.0, 2 / math.comb(n_arm + n_base, n_arm))


def compare(arm: Sequence[float], base: Sequence[float], *, higher_is_better: bool = True,
            arm_seeds: Sequence[int] | None = None, base_seeds: Sequence[int] | None = None,
            margin: float = NAN, alpha: float = 0.05) -> Comparison:
    """Compare an arm's seed repeats with the baseline's.

    Args:
        arm, base: the metric per seed repeat.
        higher_is_better: the metric's direction (only used for the note; `diff` is always arm - base).
        arm_seeds, base_seeds: seed ids of the values; pairs for the paired test are matched by seed id when given,
            else by position.
        margin: the equivalence margin of the TOST (absolute; nan: no equivalence test).
        alpha: the level the detectable difference is computed for.

    Returns:
        Comparison; p-values are nan (with a note) where a test is impossible.
    """
    a, b = np.asarray(list(arm), dtype=float), np.asarray(list(base), dtype=float)
    if arm_seeds is not None and base_seeds is not None:
        index = {s: i for i, s in enumerate(base_seeds)}
        pairs = [(a[i], b[index[s]]) for i, s in enumerate(arm_seeds) if s in index]
    else:
        pairs = list(zip(a, b))
    pairs = [(x, y) for x, y in pairs if not (math.isnan(x) or math.isnan(y))]
    a, b = _clean(a), _clean(b)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else NAN
    notes = []
    if len(a) < 2 or len(b) < 2:
        notes.append(f"n < 2 in an arm (n={len(a)} vs {len(b)}): no test")
        return Comparison(len(a), len(b), diff, NAN, NAN, NAN, NAN, len(pairs), NAN, NAN, "; ".join(notes), margin)
    lo, hi = welch_ci(a, b)
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # all values identical (var() may be 1e-33 from rounding)
        same = a.mean() == b.mean()
        notes.append("zero variance in both arms" + ("" if same else ": tests undefined"))
        p_welch = p_rank = 1.0 if same else NAN
    else:
        with warnings.catch_warnings():
            # One arm with identical values (every seed scoring the same test accuracy) is a valid Welch test;
            # scipy still warns of "catastrophic cancellation" in that arm's variance.
            warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
            p_welch = float(st.ttest_ind(a, b, equal_var=False).pvalue)
        p_rank = float(st.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    if len(pairs) >= 2:
        d = np.array([x - y for x, y in pairs])
        if np.allclose(d, d[0], rtol=1e-12, atol=1e-15):  # scipy would print p ~ 0 for a difference of zero spread
            p_paired = 1.0 if d.mean() == 0 else NAN
            if d.mean() != 0:
                notes.append(f"every matched seed differs by the same {d[0]:+.4g}: paired test undefined")
        else:
            p_paired = float(st.ttest_rel([x for x, _ in pairs], [y for _, y in pairs]).pvalue)
    else:
        p_paired = NAN
        notes.append("fewer than 2 matched seeds: no paired test")
    return Comparison(len(a), len(b), diff, lo, hi, p_welch, p_rank, len(pairs), p_paired, hedges_g(a, b),
                      "; ".join(notes), margin, tost(a, b, margin), detectable(a, b, alpha))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values in the original order (nan entries pass through and are not counted)."""
    p = np.asarray(list(pvalues), dtype=float)
    out = np.full(len(p), NAN)
    idx = [i for i in np.argsort(p) if not math.isnan(p[i])]
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


VERDICTS = ("better", "worse", "equivalent", "inconclusive")


def verdict(comparison: Comparison, p_adjusted: float, *, higher_is_better: bool, alpha: float = 0.05,
            p_tost_adjusted: float = NAN) -> str:
    """'better' / 'worse' than the baseline in the metric's direction when the difference test rejects;
    otherwise 'equivalent' when the equivalence test (TOST) rejects a difference as large as the margin, else
    'inconclusive' (the seeds cannot tell the two apart, nor show them within the margin).

    'too few repeats' when no test could be made.
    """
    if math.isnan(p_adjusted):
        return "too few repeats" if comparison.n_arm < 2 or comparison.n_base < 2 else "no test possible"
    if p_adjusted < alpha:
        improves = comparison.diff > 0 if higher_is_better else comparison.diff < 0
        return "better" if improves else "worse"
    if not math.isnan(p_tost_adjusted) and p_tost_adjusted < alpha:
        return "equivalent"
    return "inconclusive"


def expected_max(values: Sequence[float], n_max: int, *, higher_is_better: bool = True) -> list[float]:
    """Expected best score after n = 1..n_max trials drawn from the observed trial scores (Dodge et al. 2019).

    With the N scores sorted ascending v(1) <= ... <= v(N) and sampling with replacement,
    E[max of n] = sum_i v(i) * ((i/N)^n - ((i-1)/N)^n). For lower-is-better metrics it is the expected minimum.
    """
    v = _clean(values)
    if len(v) == 0 or n_max < 1:
        return []
    v = np.sort(v if higher_is_better else -v)
    N = len(v)
    i = np.arange(1, N + 1)
    out = []
    for n in range(1, n_max + 1):
        w = (i / N) ** n - ((i - 1) / N) ** n
        e = float((w * v).sum())
        out.append(e if higher_is_better else -e)
    return out


def warn_if_few_seeds(exp: Experiment, alpha: float = 0.05) -> None:
    """Warn (SpecWarning, field `seeds`) when the seeds are too few for the rank test to reach α after Holm's
    correction over the experiment's comparisons."""
    m = max(1, len(exp.arms) - 1)
    if len(exp.arms) < 2 or min_rank_p(exp.seeds, exp.seeds) * m < alpha:
        return
    enough = next(n for n in range(exp.seeds + 1, 100) if min_rank_p(n, n) * m < alpha)
    warnings.warn(SpecWarning(exp.path, "seeds", (
        f"with {exp.seeds} seeds per arm the Mann-Whitney rank test cannot go below p = "
        f"{min(1.0, min_rank_p(exp.seeds, exp.seeds) * m):.3g} (Holm, {m} comparison{'s' if m > 1 else ''}), above "
        f"α = {alpha}: it cannot back any verdict, which then rests on Welch's test alone; {enough} seeds can "
        f"(--seeds {enough})")), stacklevel=3)
