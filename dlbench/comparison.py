"""The comparison: per-arm statistics over seed repeats, tests against the baseline, tuning summary and plots.

Read-only over the stores: trials come from the Optuna studies, seed repeats from MLflow. Writing the report to
the `comparison` run is the only side effect, and `log` does it.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
import multiprocessing
import statistics
import tempfile
from pathlib import Path
from typing import Any

from dlbench import search, spec, stats
from dlbench import tracking as T
from dlbench.spec import Experiment, SpecError
from dlbench.storage import redact
from dlbench.train import direction

FORMATS = ("table", "md", "csv", "json")


@dataclasses.dataclass
class ArmResult:
    arm: str
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    values: dict[int, float]  # seed -> compared metric
    tuned_mean: float  # the tuned (validation) metric over the same repeats
    repeats_failed: int
    best_trial: float | None
    best_params: dict[str, Any]
    trials_complete: int
    trials_pruned: int
    trials_failed: int
    tuning_seconds: float
    expected_best: list[float]  # expected best validation score after 1..n trials (Dodge et al. 2019)
    # What the arm's model costs, from its finished repeats (medians; None before any): the builder, parameters,
    # estimated FLOPs per example and training throughput (examples/s, which depends on the machine).
    model: str | None = None
    params_count: float | None = None
    flops_per_example: float | None = None
    examples_per_second: float | None = None
    # A multi-objective search's complete trials: each one's objective values (Report.objectives' order), and
    # which of them the arm repeated.
    trial_objectives: list[list[float]] = dataclasses.field(default_factory=list)
    repeated_trial: int | None = None


@dataclasses.dataclass
class ArmComparison:
    arm: str
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    p_welch: float
    p_rank: float
    p_paired: float
    n_pairs: int
    p_holm: float
    hedges_g: float
    verdict: str
    published: str  # what the reference says of this arm against the baseline, and whether we agree
    note: str
    margin: float = math.nan  # equivalence margin (absolute, in the compared metric)
    p_tost: float = math.nan  # equivalence test (TOST) within ±margin
    p_tost_holm: float = math.nan  # the TOST p-values, Holm-corrected across the comparisons
    detectable: float = math.nan  # smallest |diff| a Welch test at these seeds detects with 80% power


@dataclasses.dataclass
class ReferenceMatch:
    """Our mean beside a reference value given in our compared metric (e.g. PCA's error beside a linear AE's)."""

    arm: str
    ours: float
    reference: float
    rel_diff: float  # (ours - reference) / |reference|
    within: bool | None  # |rel_diff| <= the reference's tolerance; None when it gives none


@dataclasses.dataclass
class Report:
    experiment: str
    metric: str  # compared (held-out test counterpart of the tuned metric)
    tuned_metric: str
    higher_is_better: bool
    baseline: str
    trials_budget: int
    epochs: int
    seeds: int
    spec_hash: str
    arms: list[ArmResult]
    comparisons: list[ArmComparison]
    budget_note: str
    reference: dict[str, Any] | None
    reference_matches: list[ReferenceMatch] = dataclasses.field(default_factory=list)
    # The objectives of a multi-objective search (the tuned metric first); empty for one objective.
    objectives: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, default=_json_default, allow_nan=True)


def _json_default(o):
    return str(o)


def compared_metric(exp: Experiment) -> str:
    """Arms are tuned on the spec's metric (validation) and compared on its held-out test counterpart."""
    return "test_" + exp.metric.removeprefix("val_")


# === Reading the stores ===


@functools.lru_cache(maxsize=4)
def _storage(url: str):
    """One storage per URL and process: opening a journal replays the whole file (1,000 trials: ~0.1 s)."""
    from dlbench.storage import open_storage

    return open_storage(url)


def _trials(exp: Experiment, storage_url: str, arm: str):
    import optuna

    try:
        return optuna.load_study(study_name=exp.study_name(arm), storage=_storage(storage_url))
    except KeyError:
        return None


def resolve(spec_or_name: str, tracking_uri: str) -> Experiment:
    """The experiment to compare: a spec file, or the name of an experiment in the tracking store.

    A run stores its (possibly overridden) spec on its MLflow experiment, so a name is enough, and a spec file
    whose experiment ran with other budget flags is compared as it ran. The prose the spec hash leaves out (the
    description and `[reference]`) is taken from the file when one is given, so a reference completed after the
    run is compared too.

    Raises:
        SpecError: (exit 2) for an unknown name or a malformed file.
    """
    path = Path(spec_or_name)
    exp = _with_sources(spec.load(path)) if path.suffix == ".toml" or path.is_file() else None
    name = exp.name if exp else spec_or_name
    stored = T.stored_spec(tracking_uri, name)
    if stored is not None:
        ran = spec.parse(stored, f"{name} (as stored in {redact(tracking_uri)})")
        if exp is None:
            return ran
        if ran.spec_hash == exp.spec_hash:
            return dataclasses.replace(ran, description=exp.description, reference=_ran_arms_only(exp.reference, ran))
    if exp is not None:
        if stored is None:
            raise SpecError(path, "name", f"experiment {name!r} has no finished seed repeats yet in "
                            f"{redact(tracking_uri)}; run `dlbench run {path}` first")
        return exp
    raise SpecError(spec_or_name, "name", f"no experiment named {name!r} in {redact(tracking_uri)}; run it first "
                    "with `dlbench run experiments/<file>.toml`, or pass the spec file (see `dlbench list experiments`)")


def _with_sources(exp: Experiment) -> Experiment:
    """The file's experiment with the digests of the plugins it names (part of its hash), when they import here;
    else as it is (its stored twin, found by name, is then compared)."""
    from dlbench import plugins

    try:
        return plugins.attach(exp)
    except SpecError:
        return exp


def _ran_arms_only(reference, ran: Experiment):
    """`reference` with published results only for the arms that ran (a run with --arms ran fewer)."""
    if reference is None:
        return None
    return dataclasses.replace(reference, results={k: v for k, v in reference.results.items() if k in ran.arm_names})


def build(exp: Experiment, storage_url: str, tracker: T.Tracker, alpha: float = 0.05) -> Report:
    """Gather trials and repeats and compute the statistics.

    Raises:
        SpecError: (exit 2) when no arm has a finished seed repeat yet, saying what to run first.
    """
    from optuna.trial import TrialState

    metric, higher = compared_metric(exp), direction(exp.metric) == "maximize"
    arms: list[ArmResult] = []
    for arm in exp.arm_names:
        parent = tracker.runs(role=T.ROLE_ARM, arm=arm, spec_hash=exp.spec_hash)
        config = parent[0].data.tags.get(T.TAG_CONFIG) if parent else None
        repeats = tracker.runs(role=T.ROLE_REPEAT, arm=arm, config_hash=config) if config else []
        done = [r for r in repeats if r.info.status == "FINISHED" and metric in r.data.metrics]
        values = {int(r.data.tags[T.TAG_SEED]): r.data.metrics[metric] for r in done}
        tuned = [r.data.metrics.get(f"best_{exp.metric}", math.nan) for r in done]
        cost = {k: _median([r.data.metrics[k] for r in done if k in r.data.metrics])
                for k in ("params_count", "flops_per_example", "examples_per_second")}
        d = stats.describe(list(values.values()), bounded=True)  # accuracies in [0, 1], losses and errors >= 0

        study = _trials(exp, storage_url, arm)
        trials = study.get_trials(deepcopy=False) if study else []
        count = lambda s: sum(t.state == s for t in trials)  # noqa: E731
        # A pruned trial's value is its last reported one; a multi-objective trial's first value is `metric`'s.
        scored = [t.values[0] for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.values]
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
        best = search.best_trial(complete, study.directions) if complete else None
        seconds = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                      if t.datetime_complete and t.datetime_start)
        arms.append(ArmResult(
            arm=arm, n=d.n, mean=d.mean, std=d.std, ci_low=d.ci_low, ci_high=d.ci_high, values=values,
            tuned_mean=_mean(tuned), repeats_failed=sum(r.info.status == "FAILED" for r in repeats),
            best_trial=best.values[0] if best else None, best_params=dict(best.params) if best else {},
            trials_complete=count(TrialState.COMPLETE), trials_pruned=count(TrialState.PRUNED),
            trials_failed=count(TrialState.FAIL), tuning_seconds=seconds,
            expected_best=stats.expected_max(scored, len(scored), higher_is_better=higher),
            model=done[0].data.params.get("model") if done else None, **cost,
            trial_objectives=[list(t.values) for t in complete] if exp.multi_objective else [],
            repeated_trial=complete.index(best) if best is not None and exp.multi_objective else None,
        ))
    if not any(a.n for a in arms):
        raise SpecError(exp.path, "name", f"experiment {exp.name!r} has no finished seed repeats yet; run "
                        f"`dlbench run {exp.path}` first (it resumes if it was interrupted)")

    base = next(a for a in arms if a.arm == exp.baseline)
    margin = equivalence_margin(exp, base.mean)
    raw = []
    for a in arms:
        if a.arm == exp.baseline:
            continue
        seeds_a, seeds_b = sorted(a.values), sorted(base.values)
        raw.append((a, stats.compare([a.values[s] for s in seeds_a], [base.values[s] for s in seeds_b],
                                     higher_is_better=higher, arm_seeds=seeds_a, base_seeds=seeds_b,
                                     margin=margin, alpha=alpha)))
    adjusted = stats.holm([c.p_welch for _, c in raw])
    adjusted_tost = stats.holm([c.p_tost for _, c in raw])
    comparisons = []
    for (a, c), p_adj, p_eq in zip(raw, adjusted, adjusted_tost):
        v = stats.verdict(c, p_adj, higher_is_better=higher, alpha=alpha, p_tost_adjusted=p_eq)
        comparisons.append(ArmComparison(a.arm, c.diff, c.diff_ci_low, c.diff_ci_high, c.p_welch, c.p_rank,
                                         c.p_paired, c.n_pairs, p_adj, c.hedges_g, v,
                                         _published(exp, a.arm, v), c.note, c.margin, c.p_tost, p_eq, c.mde))

    budgets = {a.trials_complete + a.trials_pruned for a in arms}
    budget_note = (f"every arm: {exp.budget.trials} tuning trials budgeted, {exp.budget.epochs} epochs each; "
                   f"finished trials per arm: " + ", ".join(f"{a.arm} {a.trials_complete + a.trials_pruned}" for a in arms)
                   + ("" if len(budgets) == 1 else " (unequal: some trials diverged or the run is unfinished)"))
    if exp.multi_objective:
        budget_note += (f"; a multi-objective search over {', '.join(exp.metrics)} (not pruned), each arm repeating "
                        f"the trial of its Pareto front best in {exp.metric}")
    ref = None
    if exp.reference is not None:
        ref = {"source": exp.reference.source, "claim": exp.reference.claim, "results": dict(exp.reference.results),
               "results_metric": exp.reference.results_metric, "tolerance": exp.reference.tolerance}
    return Report(exp.name, metric, exp.metric, higher, exp.baseline, exp.budget.trials, exp.budget.epochs,
                  exp.seeds, exp.spec_hash, arms, comparisons, budget_note, ref, _matches(exp, arms, metric),
                  list(exp.metrics) if exp.multi_objective else [])


# Compared metrics that are fractions (the default margin is one point of them); the others are losses and errors.
FRACTIONS = ("accuracy", "sequence_accuracy")


def equivalence_margin(exp: Experiment, baseline_mean: float) -> float:
    """The spec's `equivalence_margin`, else 0.01 (one point) for an accuracy, else 5% of the baseline's mean
    for a loss or an error."""
    if exp.equivalence_margin is not None:
        return float(exp.equivalence_margin)
    if compared_metric(exp).removeprefix("test_") in FRACTIONS:
        return 0.01
    return 0.05 * abs(baseline_mean) if math.isfinite(baseline_mean) else math.nan


def _matches(exp: Experiment, arms: list[ArmResult], metric: str) -> list[ReferenceMatch]:
    """Each arm's mean beside its reference value, when the reference is given in our compared metric."""
    ref = exp.reference
    if ref is None or ref.results_metric != metric:
        return []
    out = []
    for a in arms:
        if a.arm not in ref.results or a.n == 0:
            continue
        value = ref.results[a.arm]
        rel = (a.mean - value) / abs(value) if value else math.nan
        within = None if ref.tolerance is None or math.isnan(rel) else abs(rel) <= ref.tolerance
        out.append(ReferenceMatch(a.arm, a.mean, value, rel, within))
    return out


def _median(xs: list[float]) -> float | None:
    return float(statistics.median(xs)) if xs else None


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


def _published(exp: Experiment, arm: str, verdict: str) -> str:
    ref = exp.reference
    if ref is None:
        return ""
    if arm not in ref.results or exp.baseline not in ref.results or ref.lower_is_better is None:
        return "no published number for this pair (see the claim)"
    a, b = ref.results[arm], ref.results[exp.baseline]
    if a == b:
        return f"published: equal ({a} vs {b})"
    pub = "better" if (a < b) == ref.lower_is_better else "worse"
    if verdict in ("better", "worse"):
        ours = "agrees" if verdict == pub else "disagrees"
    else:
        ours = f"not shown here ({verdict})"
    unit = f" {ref.results_metric}" if ref.results_metric else ""
    return f"published: {pub} ({a} vs {b}{unit}); our direction {ours}"


# === Formatting ===


def _f(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def _p(x: float) -> str:
    if math.isnan(x):
        return "-"
    return "<0.0001" if x < 1e-4 else f"{x:.4f}"


def rows(report: Report) -> list[dict[str, Any]]:
    """One flat row per arm (the CSV and the tables)."""
    comps = {c.arm: c for c in report.comparisons}
    out = []
    for a in report.arms:
        c = comps.get(a.arm)
        out.append({
            "arm": a.arm + (" (baseline)" if a.arm == report.baseline else ""),
            "n": a.n, "mean": a.mean, "std": a.std, "ci95_low": a.ci_low, "ci95_high": a.ci_high,
            f"{report.tuned_metric}_mean": a.tuned_mean, "best_trial": a.best_trial,
            "trials_complete": a.trials_complete, "trials_pruned": a.trials_pruned, "trials_failed": a.trials_failed,
            "repeats_failed": a.repeats_failed, "tuning_seconds": round(a.tuning_seconds, 1),
            "diff": c.diff if c else None, "diff_ci95_low": c.diff_ci_low if c else None,
            "diff_ci95_high": c.diff_ci_high if c else None, "p_welch": c.p_welch if c else None,
            "p_mannwhitney": c.p_rank if c else None, "p_paired": c.p_paired if c else None,
            "p_holm": c.p_holm if c else None, "hedges_g": c.hedges_g if c else None,
            "margin": c.margin if c else None, "p_tost": c.p_tost if c else None,
            "p_tost_holm": c.p_tost_holm if c else None, "detectable_diff": c.detectable if c else None,
            "verdict": c.verdict if c else "baseline", "published": c.published if c else "",
            "model": a.model, "params_count": a.params_count, "flops_per_example": a.flops_per_example,
            "examples_per_second": a.examples_per_second,
        })
    return out


def format_report(report: Report, fmt: str = "table") -> str:
    if fmt == "json":
        return report.to_json()
    if fmt == "csv":
        buf = io.StringIO()
        data = rows(report)
        w = csv.DictWriter(buf, fieldnames=list(data[0]))
        w.writeheader()
        w.writerows(data)
        return buf.getvalue()
    return _markdown(report) if fmt == "md" else _table(report)


def _arm_lines(report: Report) -> tuple[list[str], list[list[str]]]:
    head = ["arm", "n", f"{report.metric} mean ± std", "95% CI", f"{report.tuned_metric}", "best trial",
            "trials c/p/f", "diff vs baseline [95% CI]", "p Welch", "p rank", "p paired", "p Holm", "g",
            "p TOST", "detectable", "verdict"]
    comps = {c.arm: c for c in report.comparisons}
    body = []
    for a in report.arms:
        c = comps.get(a.arm)
        body.append([
            a.arm + (" (baseline)" if a.arm == report.baseline else ""), str(a.n), f"{_f(a.mean)} ± {_f(a.std)}",
            f"[{_f(a.ci_low)}, {_f(a.ci_high)}]", _f(a.tuned_mean), _f(a.best_trial),
            f"{a.trials_complete}/{a.trials_pruned}/{a.trials_failed}",
            f"{c.diff:+.4f} [{_f(c.diff_ci_low)}, {_f(c.diff_ci_high)}]" if c else "",
            _p(c.p_welch) if c else "", _p(c.p_rank) if c else "", _p(c.p_paired) if c else "",
            _p(c.p_holm) if c else "", _f(c.hedges_g, 2) if c else "", _p(c.p_tost_holm) if c else "",
            _f(c.detectable) if c else "", c.verdict if c else "",
        ])
    return head, body


def _footer(report: Report) -> list[str]:
    lines = [f"Tuned on {report.tuned_metric}; compared on held-out {report.metric} over seed repeats "
             f"({'higher' if report.higher_is_better else 'lower'} is better). Seeds are paired across arms. "
             f"p Holm: Welch p-values corrected across {len(report.comparisons)} comparison(s); verdict at α = 0.05: "
             "better or worse when p Holm < α, else equivalent when the equivalence test is (p TOST: two one-sided "
             f"Welch tests of |diff| < {_f(_margin(report))}, Holm-corrected), else inconclusive. CIs of the means: "
             "percentile bootstrap (inside the metric's bounds); detectable: the smallest |diff| a Welch test at "
             "these seeds detects with 80% power.",
             f"Budget: {report.budget_note}."]
    costs = [a for a in report.arms if a.params_count is not None]
    if costs:
        lines.append("Cost per arm (median over repeats; throughput is training examples/s on the machine that ran "
                     "it): " + "; ".join(_cost(a) for a in costs))
    for c in report.comparisons:
        if c.note:
            lines.append(f"{c.arm}: {c.note}")
    if report.reference:
        lines.append(f"Reference: {report.reference['source']}: {report.reference['claim']}")
        for c in report.comparisons:
            if c.published:
                lines.append(f"  {c.arm} vs {report.baseline}: ours {c.verdict}; {c.published}")
    if report.reference_matches:
        tol = report.reference["tolerance"]
        lines.append(f"Ours beside the reference values ({report.metric}, mean over seeds; relative difference"
                     + (f"; tolerance ±{tol:.0%})" if tol is not None else ")") + ":")
        for m in report.reference_matches:
            verdict = "" if m.within is None else ("; within tolerance" if m.within else "; OUTSIDE tolerance")
            lines.append(f"  {m.arm}: ours {m.ours:.5g} vs reference {m.reference:.5g} ({m.rel_diff:+.2%}){verdict}")
    return lines


def _margin(report: Report) -> float | None:
    return report.comparisons[0].margin if report.comparisons else None


def _cost(a: ArmResult) -> str:
    parts = [f"{a.params_count:,.0f} params"]
    if a.flops_per_example:
        parts.append(f"{_si(a.flops_per_example)}FLOPs/example")
    if a.examples_per_second:
        parts.append(f"{a.examples_per_second:,.0f} examples/s")
    return (f"{a.arm} ({a.model})" if a.model else a.arm) + ": " + ", ".join(parts)


def _si(x: float) -> str:
    """1.2 k, 3.4 M, 5.6 G: a count with an SI prefix and a trailing space."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= factor:
            return f"{x / factor:.3g} {prefix}"
    return f"{x:.3g} "


def _table(report: Report) -> str:
    head, body = _arm_lines(report)
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    fmt = lambda r: "  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([f"{report.experiment}: comparison of {len(report.arms)} arms", fmt(head),
                      fmt(["-" * w for w in widths]), *map(fmt, body), "", *_footer(report)])


def _markdown(report: Report) -> str:
    head, body = _arm_lines(report)
    lines = [f"# {report.experiment}: comparison", "", "| " + " | ".join(head) + " |",
             "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines += ["", *_footer(report), "", "## Best configuration per arm", ""]
    for a in report.arms:
        front = ""
        if report.objectives and a.trial_objectives:
            from dlbench.plots import pareto_front  # noqa: PLC0415

            up = [direction(m) == "maximize" for m in report.objectives]
            front = f"; {len(pareto_front(a.trial_objectives, up))} of {len(a.trial_objectives)} trials on the Pareto front"
        lines.append(f"- **{a.arm}**: best trial {_f(a.best_trial)} with {a.best_params}; "
                     f"tuning time {a.tuning_seconds:.0f} s{front}")
    return "\n".join(lines) + "\n"


# === Plots and the comparison run ===


def _learning_curves(report: Report, tracker: T.Tracker, exp: Experiment) -> dict[str, list[list[float]]]:
    curves: dict[str, list[list[float]]] = {}
    for a in report.arms:
        parent = tracker.runs(role=T.ROLE_ARM, arm=a.arm, spec_hash=exp.spec_hash)
        config = parent[0].data.tags.get(T.TAG_CONFIG) if parent else None
        runs = tracker.runs(role=T.ROLE_REPEAT, arm=a.arm, config_hash=config, status="FINISHED") if config else []
        curves[a.arm] = [[m.value for m in sorted(tracker.get_metric_history(r.info.run_id, exp.metric),
                                                   key=lambda m: m.step)] for r in runs]
    return curves


def plots(report: Report, exp: Experiment, storage_url: str, tracker: T.Tracker, outdir: Path) -> list[Path]:
    """Learning curves, final-metric distribution, expected best score vs trials, and Optuna's plots of each arm's
    study (OPTUNA_PLOTS)."""
    from dlbench import plots as P

    base = report.baseline
    jobs = [  # (file, how to draw it): everything read from the stores first, so drawing needs no connection
        (outdir / "learning_curves.png", functools.partial(
            P.learning_curves, _learning_curves(report, tracker, exp), exp.metric, outdir / "learning_curves.png",
            base)),
        (outdir / "distribution.png", functools.partial(
            P.distribution, {a.arm: list(a.values.values()) for a in report.arms}, report.metric,
            outdir / "distribution.png", base)),
        (outdir / "expected_best_vs_trials.png", functools.partial(
            P.expected_max_curves, {a.arm: a.expected_best for a in report.arms}, exp.metric,
            outdir / "expected_best_vs_trials.png", base)),
    ]
    if report.objectives:
        jobs.append((outdir / "pareto_front.png", functools.partial(
            P.pareto_fronts, {a.arm: a.trial_objectives for a in report.arms}, report.objectives,
            [direction(m) for m in report.objectives], {a.arm: a.repeated_trial for a in report.arms},
            outdir / "pareto_front.png", base)))
    for arm in exp.arm_names:
        study = _in_memory(_trials(exp, storage_url, arm))
        if study is not None:
            for kind in OPTUNA_PLOTS:
                path = outdir / f"optuna_{kind}_{arm}.png"
                jobs.append((path, functools.partial(_optuna_plot, study, kind, f"{exp.name} / {arm}", path,
                                                     exp.metric)))
    _draw(jobs)
    return [path for path, _ in jobs if path.exists()]


def _draw(jobs: list) -> None:
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
        for _, draw in jobs:
            draw()
        return
    theirs, mine = jobs[1::2], jobs[0::2]
    child = multiprocessing.get_context("fork").Process(target=lambda: [draw() for _, draw in theirs], daemon=True)
    child.start()
    for _, draw in mine:
        draw()
    child.join()
    for path, draw in theirs:
        if child.exitcode != 0 and not path.exists() and not path.with_suffix(".txt").exists():
            draw()


def _in_memory(study):
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


def _optuna_plot(study, kind: str, title: str, path: Path, metric: str = "objective") -> None:
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


def log(report: Report, exp: Experiment, storage_url: str, tracker: T.Tracker, tags: dict[str, str]) -> str:
    """Write comparison.md/.csv/.json and the plots to the experiment's `comparison` run; returns its run id."""
    found = tracker.runs(role=T.ROLE_COMPARISON, spec_hash=exp.spec_hash)
    run_id = found[0].info.run_id if found else tracker.create_run(
        "comparison", {**tags, T.TAG_ROLE: T.ROLE_COMPARISON, T.TAG_SPEC_HASH: exp.spec_hash})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "comparison.md").write_text(format_report(report, "md"))
        (out / "comparison.csv").write_text(format_report(report, "csv"))
        (out / "comparison.json").write_text(format_report(report, "json"))
        for path in [out / "comparison.md", out / "comparison.csv", out / "comparison.json",
                     *plots(report, exp, storage_url, tracker, out)]:
            tracker.log_artifact(run_id, path)
        for txt in out.glob("*.txt"):
            tracker.log_artifact(run_id, txt)
    metrics: dict[str, float] = {}
    for a in report.arms:
        for key, value in (("mean", a.mean), ("std", a.std), ("ci95_low", a.ci_low), ("ci95_high", a.ci_high),
                           ("n", a.n), ("best_trial", a.best_trial)):
            if value is not None and not math.isnan(value):
                metrics[f"{a.arm}.{report.metric}.{key}"] = value
        for key in ("params_count", "flops_per_example", "examples_per_second"):
            if getattr(a, key) is not None:
                metrics[f"{a.arm}.{key}"] = getattr(a, key)
    for c in report.comparisons:
        for key, value in (("diff", c.diff), ("p_holm", c.p_holm), ("hedges_g", c.hedges_g)):
            if not math.isnan(value):
                metrics[f"{c.arm}.{key}"] = value
    for m in report.reference_matches:
        if not math.isnan(m.rel_diff):
            metrics[f"{m.arm}.reference_rel_diff"] = m.rel_diff
    tracker.log_metrics(run_id, metrics)
    tracker.set_tags(run_id, {f"{T.TAG_VERDICT}.{c.arm}": c.verdict for c in report.comparisons})
    tracker.end_run(run_id, T.STATE_COMPLETE)
    return run_id


def report(exp: Experiment, storage_url: str, tracking_uri: str, write: bool = True) -> Report:
    """Build the comparison from the stores and (with `write`) log it to the experiment's `comparison` run."""
    tracker = T.Tracker(tracking_uri, exp.name)
    result = build(exp, storage_url, tracker)
    if write:
        log(result, exp, storage_url, tracker, T.manifest(device="none (no training)",
                                                          backend="none"))
    return result
