"""The comparison, pure statistics: from each arm's gathered results (gather.py) to per-arm summaries, the tests
of every arm against the baseline and the verdicts (stats.py), held in a Report that reporting.py renders.

No store is read or written here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from dlbench import search, stats
from dlbench.spec import Experiment, SpecError
from dlbench.train import direction

NAN = float("nan")


@dataclasses.dataclass
class ArmData:
    """What the stores hold of one arm (gather.gather): its finished seed repeats and its tuning trials."""

    arm: str
    values: dict[int, float]  # seed -> compared (test) metric of each finished repeat
    tuned: list[float]  # best_<metric> (validation) of the same repeats
    repeats_failed: int
    costs: dict[str, float | None]  # medians over the repeats: params_count, flops_per_example, examples_per_second
    model: str | None
    trials: list[Any]  # the arm's Optuna trials (FrozenTrial), every state
    directions: list[Any]  # its study's directions (StudyDirection per objective)
    quantize: str | None = None  # how its repeats' models were quantized ("int8", "int8 per_tensor"); None: not
    float_values: dict[int, float] = dataclasses.field(default_factory=dict)  # seed -> the float model's metric


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
    # Post-training quantization (dlbench.quantize), medians over the repeats that measure it: the float and the
    # quantized model's size in bytes and CPU latency per example (ms, batch size 1), how the arm quantizes (None:
    # it does not; `values` are then the quantized model's), and the mean of its float model's compared metric.
    model_bytes: float | None = None
    quantized_bytes: float | None = None
    latency_ms: float | None = None
    quantized_latency_ms: float | None = None
    quantize: str | None = None
    float_mean: float | None = None
    # A multi-objective search's complete trials: each one's objective values (Report.objectives' order), and
    # which of them the arm repeated.
    trial_objectives: list[list[float]] = dataclasses.field(default_factory=list)
    repeated_trial: int | None = None


@dataclasses.dataclass(frozen=True)
class ArmComparison(stats.Comparison):
    """An arm against the baseline: every statistic of stats.compare (inherited, so a new one arrives here
    unchanged), the Holm-adjusted p-values across the experiment's comparisons, the verdict and what the reference
    says."""

    arm: str = ""
    p_holm: float = NAN  # Welch p-values, Holm-corrected across the comparisons
    p_tost_holm: float = NAN  # the TOST p-values, Holm-corrected across the comparisons
    verdict: str = ""
    published: str = ""  # what the reference says of this arm against the baseline, and whether we agree


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


def build(exp: Experiment, data: list[ArmData], alpha: float = 0.05) -> Report:
    """The statistics of the gathered results: each arm's summary and tuning record, each arm against the
    baseline.

    Raises:
        SpecError: (exit 2) when no arm has a finished seed repeat yet, saying what to run first.
    """
    from optuna.trial import TrialState

    metric, higher = compared_metric(exp), direction(exp.metric) == "maximize"
    arms: list[ArmResult] = []
    for g in data:
        d = stats.describe(list(g.values.values()), bounded=True)  # accuracies in [0, 1], losses and errors >= 0
        count = lambda s: sum(t.state == s for t in g.trials)  # noqa: E731
        # A pruned trial's value is its last reported one; a multi-objective trial's first value is `metric`'s.
        scored = [t.values[0] for t in g.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.values]
        complete = [t for t in g.trials if t.state == TrialState.COMPLETE and t.values]
        best = search.best_trial(complete, g.directions) if complete else None
        seconds = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in g.trials
                      if t.datetime_complete and t.datetime_start)
        arms.append(ArmResult(
            arm=g.arm, n=d.n, mean=d.mean, std=d.std, ci_low=d.ci_low, ci_high=d.ci_high, values=g.values,
            tuned_mean=_mean(g.tuned), repeats_failed=g.repeats_failed,
            best_trial=best.values[0] if best else None, best_params=dict(best.params) if best else {},
            trials_complete=count(TrialState.COMPLETE), trials_pruned=count(TrialState.PRUNED),
            trials_failed=count(TrialState.FAIL), tuning_seconds=seconds,
            expected_best=stats.expected_max(scored, len(scored), higher_is_better=higher), model=g.model,
            **g.costs, quantize=g.quantize, float_mean=_mean(list(g.float_values.values())) if g.float_values else None,
            trial_objectives=[list(t.values) for t in complete] if exp.multi_objective else [],
            repeated_trial=complete.index(best) if best is not None and exp.multi_objective else None,
        ))
    if not any(a.n for a in arms):
        raise SpecError(exp.path, "name", f"experiment {exp.name!r} has no finished seed repeats yet; run "
                        f"`dlbench run {exp.path}` first (it resumes if it was interrupted)")

    base = next(a for a in arms if a.arm == exp.baseline)
    margin = equivalence_margin(exp, base.mean)
    tests = []
    for a in arms:
        if a.arm == exp.baseline:
            continue
        seeds_a, seeds_b = sorted(a.values), sorted(base.values)
        tests.append((a, stats.compare([a.values[s] for s in seeds_a], [base.values[s] for s in seeds_b],
                                       higher_is_better=higher, arm_seeds=seeds_a, base_seeds=seeds_b,
                                       margin=margin, alpha=alpha)))
    adjusted = stats.holm([c.p_welch for _, c in tests])
    adjusted_tost = stats.holm([c.p_tost for _, c in tests])
    comparisons = []
    for (a, c), p_adj, p_eq in zip(tests, adjusted, adjusted_tost):
        v = stats.verdict(c, p_adj, higher_is_better=higher, alpha=alpha, p_tost_adjusted=p_eq)
        comparisons.append(ArmComparison(**dataclasses.asdict(c), arm=a.arm, p_holm=p_adj, p_tost_holm=p_eq,
                                         verdict=v, published=_published(exp, a.arm, v)))

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
