"""Comparison plots (matplotlib, PNG): learning curves, final-metric distributions, expected best vs trials, the
Pareto fronts of a multi-objective search, and Optuna's plots of each arm's study.

One colour per arm, the same in every plot; the baseline is marked in the legend. Our plots use no pyplot global
state; Optuna's draw through pyplot, and each of their figures is closed once saved.
"""

from __future__ import annotations

import math
import multiprocessing
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


# === Drawing a comparison's plots (reporting.plots reads the stores; these only draw) ===


def draw(jobs: list) -> None:
    """Draw the plots, half of them in a forked child where the platform has fork and this process has no deep
    learning framework loaded.

    Matplotlib draws on one core; for a large comparison the 7 PNGs took 3.6 s of `compare`'s 6 s
    (bench/CHANGES.md). A child that fails leaves its plots to this process.
    """
    import sys

    # A process that has trained (a single-worker run, the Python API) holds TensorFlow's or JAX's threads, and a
    # forked copy of it can crash: draw everything here then.
    framework = any(m in sys.modules for m in ("tensorflow", "jax"))
    if len(jobs) < 2 or framework or "fork" not in multiprocessing.get_all_start_methods():
        for _, job in jobs:
            job()
        return
    theirs, mine = jobs[1::2], jobs[0::2]
    child = multiprocessing.get_context("fork").Process(target=lambda: [job() for _, job in theirs], daemon=True)
    child.start()
    for _, job in mine:
        job()
    child.join()
    for path, job in theirs:
        if child.exitcode != 0 and not path.exists() and not path.with_suffix(".txt").exists():
            job()


def in_memory(study):
    """A copy of a study in memory, so plots drawn in a forked process never share a database connection."""
    import optuna

    if study is None:
        return None
    copy = optuna.create_study(directions=study.directions, study_name=study.study_name)
    copy.add_trials(study.get_trials(deepcopy=False))
    return copy


# Optuna's plots of each arm's study: the search over time, which parameters mattered, and how the metric depends
# on them (all parameters at once, pairs, one at a time). A plot that cannot be drawn (too few trials, a single
# parameter for the contour) leaves a .txt saying why.
OPTUNA_PLOTS = ("history", "importance", "parallel_coordinate", "contour", "slice")


def optuna_plot(study, kind: str, title: str, path: Path, metric: str = "objective") -> None:
    """One of Optuna's plots of a study; of a multi-objective study's first objective (`metric`)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    fn = {"history": ovm.plot_optimization_history, "importance": ovm.plot_param_importances,
          "parallel_coordinate": ovm.plot_parallel_coordinate, "contour": ovm.plot_contour,
          "slice": ovm.plot_slice}[kind]
    searched = {name for t in study.get_trials(deepcopy=False) for name in t.params}
    if kind == "contour" and len(searched) < 2:  # Optuna would draw an empty frame
        path.with_suffix(".txt").write_text(f"not available: a contour plot needs two searched parameters; this arm "
                                            f"searches {len(searched)}\n")
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target = {} if len(study.directions) == 1 else dict(target=lambda t: t.values[0], target_name=metric)
            ax = fn(study, **target)
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.suptitle(title)
            fig.set_size_inches(8, 5)
            fig.tight_layout()  # warns for a colour bar's axes, which it leaves as they are
        fig.savefig(path, dpi=100)
        plt.close(fig)
    except (ValueError, RuntimeError, ZeroDivisionError) as e:  # too few trials or parameters to plot
        path.with_suffix(".txt").write_text(f"not available: {e}\n")


def image_grid(images: np.ndarray, path: str | Path, title: str, columns: int = 8) -> Path:
    """Grey-scale images (n, height, width) with values in [0, 1], `columns` to a row."""
    rows = math.ceil(len(images) / columns)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(columns * 0.9, rows * 0.9 + 0.4), dpi=100)
    for i, img in enumerate(images):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.imshow(np.clip(img, 0.0, 1.0), cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_axis_off()
    fig.suptitle(title)
    return _save(fig, path)


def latent_scatter(points: np.ndarray, labels: np.ndarray | None, path: str | Path) -> Path:
    """2-D latent means of the test examples, coloured by class where there are labels."""
    fig, ax = _figure(6.0, 5.5)
    art = ax.scatter(points[:, 0], points[:, 1], s=4, c=labels, cmap="tab10" if labels is not None else None)
    if labels is not None:
        fig.colorbar(art, ax=ax, label="class")
    ax.set(xlabel="z[0]", ylabel="z[1]", title="test examples in the latent space (means of q(z|x))")
    return _save(fig, path)


def sample_scatter(points: np.ndarray, reference: np.ndarray, modes: np.ndarray | None, path: str | Path) -> Path:
    """A generator's 2-D samples over the real points, with the mixture's modes where known."""
    fig, ax = _figure(6.0, 6.0)
    ax.scatter(reference[:, 0], reference[:, 1], s=3, c="0.75", label="real (test)")
    ax.scatter(points[:, 0], points[:, 1], s=3, c="tab:blue", alpha=0.5, label="generated")
    if modes is not None:
        ax.scatter(modes[:, 0], modes[:, 1], s=40, marker="x", c="tab:red", label="modes")
    ax.set(xlabel="x[0]", ylabel="x[1]", title="generated samples", aspect="equal")
    ax.legend(loc="upper right", fontsize="small")
    return _save(fig, path)
