"""Comparison plots (matplotlib, PNG): learning curves, final-metric distributions, expected best vs trials, and
the Pareto fronts of a multi-objective search.

One colour per arm, the same in every plot; the baseline is marked in the legend. No pyplot global state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dlbench import stats

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
            "#bcbd22"]


def arm_colors(arms: Sequence[str]) -> dict[str, str]:
    """A fixed colour per arm, by the arms' order in the spec."""
    return {a: _PALETTE[i % len(_PALETTE)] for i, a in enumerate(arms)}


def _label(arm: str, baseline: str | None) -> str:
    return f"{arm} (baseline)" if arm == baseline else arm


def _figure(width: float = 8.0, height: float = 5.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path)  # Figure without pyplot draws with the Agg canvas
    return path


def learning_curves(curves: Mapping[str, Sequence[Sequence[float]]], metric: str, path: str | Path,
                    baseline: str | None = None) -> Path:
    """Mean and 95% t-band over seeds of a per-epoch metric, one line per arm (band only where n >= 2)."""
    fig, ax = _figure()
    colors = arm_colors(list(curves))
    for arm, series in curves.items():
        if not series:
            continue
        length = max(len(s) for s in series)
        m = np.full((len(series), length), np.nan)
        for i, s in enumerate(series):
            m[i, : len(s)] = s
        x = np.arange(1, length + 1)
        summaries = [stats.describe(m[:, j]) for j in range(length)]
        mean = np.array([s.mean for s in summaries])
        ax.plot(x, mean, color=colors[arm], lw=2, label=f"{_label(arm, baseline)} (n={len(series)})")
        lo = np.array([s.ci_low for s in summaries])
        hi = np.array([s.ci_high for s in summaries])
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, color=colors[arm], alpha=0.2, lw=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per epoch: mean and 95% CI over seed repeats")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


def distribution(values: Mapping[str, Sequence[float]], metric: str, path: str | Path,
                 baseline: str | None = None) -> Path:
    """A box per arm with every seed's value drawn on top (deterministic jitter)."""
    fig, ax = _figure()
    arms = list(values)
    colors = arm_colors(arms)
    data = [[v for v in values[a] if not math.isnan(v)] for a in arms]
    present = [i for i, d in enumerate(data) if d]
    if present:
        ax.boxplot([data[i] for i in present], positions=[i + 1 for i in present], widths=0.5, showfliers=False,
                   medianprops={"color": "black"})
    rng = np.random.default_rng(0)
    for i, (arm, d) in enumerate(zip(arms, data)):
        ax.scatter(i + 1 + rng.uniform(-0.12, 0.12, len(d)), d, color=colors[arm], s=36, zorder=3,
                   edgecolor="white", label=f"{_label(arm, baseline)} (n={len(d)})")
    ax.set_xticks(range(1, len(arms) + 1), [_label(a, baseline) for a in arms])
    ax.set_xlim(0.4, len(arms) + 0.6)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} of each seed repeat, per arm")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="best")
    return _save(fig, path)


def expected_max_curves(curves: Mapping[str, Sequence[float]], metric: str, path: str | Path,
                        baseline: str | None = None) -> Path:
    """Expected best validation score against the number of tuning trials, one line per arm."""
    fig, ax = _figure()
    colors = arm_colors(list(curves))
    for arm, ys in curves.items():
        if len(ys):
            ax.plot(np.arange(1, len(ys) + 1), ys, marker="o", ms=3, color=colors[arm], lw=2,
                    label=_label(arm, baseline))
    ax.set_xlabel("number of tuning trials")
    ax.set_ylabel(f"expected best {metric}")
    ax.set_title("Expected best validation score vs tuning trials (Dodge et al. 2019)")
    ax.grid(alpha=0.3)
    if any(len(v) for v in curves.values()):
        ax.legend(loc="best")
    return _save(fig, path)


def pareto_front(points: Sequence[Sequence[float]], maximize: Sequence[bool]) -> list[int]:
    """Indices of the points no other point dominates (at least as good in every objective, better in one)."""
    signed = np.asarray([[v if up else -v for v, up in zip(p, maximize)] for p in points], dtype=float)
    front = []
    for i, p in enumerate(signed):
        dominated = np.any(np.all(signed >= p, axis=1) & np.any(signed > p, axis=1))
        if not dominated:
            front.append(i)
    return front


def pareto_fronts(trials: Mapping[str, Sequence[Sequence[float]]], objectives: Sequence[str],
                  directions: Sequence[str], repeated: Mapping[str, int | None], path: str | Path,
                  baseline: str | None = None) -> Path:
    """Every complete trial of each arm, the first objective against each other one (a panel per pair), with
    each arm's Pareto front over all objectives joined by a line and the trial the arm repeated (`repeated`: its
    index in the arm's trials) starred."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    others = list(range(1, len(objectives)))
    fig = Figure(figsize=(max(8.0, 6.0 * len(others)), 5.0), dpi=100)
    colors = arm_colors(list(trials))
    maximize = [d == "maximize" for d in directions]
    for panel, j in enumerate(others):
        ax = fig.add_subplot(1, len(others), panel + 1)
        for arm, points in trials.items():
            if not points:
                continue
            pts = np.asarray(points, dtype=float)
            ax.scatter(pts[:, j], pts[:, 0], s=14, alpha=0.35, color=colors[arm])
            front = sorted(pareto_front(points, maximize), key=lambda i: pts[i, j])
            ax.plot(pts[front, j], pts[front, 0], marker="o", ms=5, lw=1.5, color=colors[arm],
                    label=f"{_label(arm, baseline)}: {len(front)} of {len(points)} trials on the front")
            k = repeated.get(arm)
            if k is not None:
                ax.scatter([pts[k, j]], [pts[k, 0]], marker="*", s=180, color=colors[arm], edgecolor="black", zorder=5)
        if objectives[j] in ("flops_per_example", "params_count"):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"{objectives[j]} ({'higher' if maximize[j] else 'lower'} is better)")
        ax.set_ylabel(f"{objectives[0]} ({'higher' if maximize[0] else 'lower'} is better)")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle("Pareto fronts of the tuning trials\n(line: each arm's front; star: the configuration it repeated "
                 "over seeds, its best in the first metric)", fontsize=10)
    return _save(fig, path)
