"""Statistics over seed repeats: summaries, tests against a baseline, Holm correction, expected best score."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Sequence

import numpy as np
from scipy import stats as st

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


def _clean(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(list(values), dtype=float)
    return a[~np.isnan(a)]


def describe(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """n, mean, sample std (ddof=1) and the t confidence interval of the mean (nan where n < 2)."""
    a = _clean(values)
    n = len(a)
    if n == 0:
        return Summary(0, NAN, NAN, NAN, NAN)
    mean = float(a.mean())
    if n < 2:
        return Summary(1, mean, NAN, NAN, NAN)
    sd = float(a.std(ddof=1))
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


def welch_ci(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    diff = float(a.mean() - b.mean())
    if se == 0:
        return diff, diff
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(st.t.ppf(0.5 + confidence / 2, dof)) * se
    return diff - half, diff + half


def compare(arm: Sequence[float], base: Sequence[float], *, higher_is_better: bool = True,
            arm_seeds: Sequence[int] | None = None, base_seeds: Sequence[int] | None = None) -> Comparison:
    """Compare an arm's seed repeats with the baseline's.

    Args:
        arm, base: the metric per seed repeat.
        higher_is_better: the metric's direction (only used for the note; `diff` is always arm - base).
        arm_seeds, base_seeds: seed ids of the values; pairs for the paired test are matched by seed id when given,
            else by position.

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
        return Comparison(len(a), len(b), diff, NAN, NAN, NAN, NAN, len(pairs), NAN, NAN, "; ".join(notes))
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
        p_paired = (1.0 if d.mean() == 0 else NAN) if np.allclose(d, d[0], rtol=1e-12, atol=1e-15) else float(
            st.ttest_rel([x for x, _ in pairs], [y for _, y in pairs]).pvalue)
    else:
        p_paired = NAN
        notes.append("fewer than 2 matched seeds: no paired test")
    return Comparison(len(a), len(b), diff, lo, hi, p_welch, p_rank, len(pairs), p_paired, hedges_g(a, b),
                      "; ".join(notes))


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


def verdict(comparison: Comparison, p_adjusted: float, *, higher_is_better: bool, alpha: float = 0.05) -> str:
    """'better' / 'worse' than the baseline in the metric's direction, or 'no significant difference'.

    'too few repeats' when no test could be made.
    """
    if math.isnan(p_adjusted):
        return "too few repeats" if comparison.n_arm < 2 or comparison.n_base < 2 else "no test possible"
    if p_adjusted >= alpha:
        return "no significant difference"
    improves = comparison.diff > 0 if higher_is_better else comparison.diff < 0
    return "better" if improves else "worse"


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
