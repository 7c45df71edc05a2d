"""Rendering a comparison: the table, markdown, CSV and JSON of a Report, driven by one list of columns; its plots;
and the `comparison` run in MLflow that holds them. `report` is the whole path: gather, compute, log."""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import math
import tempfile
from pathlib import Path
from typing import Any, Callable

from dlbench import gather
from dlbench import tracking as T
from dlbench.comparison import ArmComparison, ArmResult, Report, build
from dlbench.spec import Experiment
from dlbench.train import direction

FORMATS = ("table", "md", "csv", "json")


def _f(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def _p(x: float) -> str:
    if math.isnan(x):
        return "-"
    return "<0.0001" if x < 1e-4 else f"{x:.4f}"


# === The columns: every format is drawn from this one list ===


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of every format.

    `keys` name its values in the CSV, the JSON rows and `Report.to_frame` (one key per value; a column of several
    values, such as a mean and its CI, is one cell of the table); `header` heads it in the table and markdown
    (None: not shown there; "{metric}" and "{tuned}" are filled in); `value(arm, comparison, report)` gives its
    value (a tuple for several keys); `text` formats that value for the table. A `compared` column holds a
    statistic of the arm against the baseline: the baseline's cell is empty (None in the CSV)."""

    keys: tuple[str, ...]
    header: str | None
    value: Callable[[ArmResult, ArmComparison | None, Report], Any]
    text: Callable[[Any], str] = str
    compared: bool = False


# Post-training quantization (dlbench.quantize): sizes, latencies, how the arm quantizes, its float model's metric.
QUANTIZATION = ("model_bytes", "quantized_bytes", "latency_ms", "quantized_latency_ms", "quantize", "float_mean")


def _pair(v) -> str:
    return f"[{_f(v[0])}, {_f(v[1])}]"


COLUMNS = [
    Column(("arm",), "arm", lambda a, c, r: a.arm + (" (baseline)" if a.arm == r.baseline else "")),
    Column(("n",), "n", lambda a, c, r: a.n),
    Column(("mean", "std"), "{metric} mean ± std", lambda a, c, r: (a.mean, a.std), lambda v: f"{_f(v[0])} ± {_f(v[1])}"),
    Column(("ci95_low", "ci95_high"), "95% CI", lambda a, c, r: (a.ci_low, a.ci_high), _pair),
    Column(("{tuned}_mean",), "{tuned}", lambda a, c, r: a.tuned_mean, _f),
    Column(("best_trial",), "best trial", lambda a, c, r: a.best_trial, _f),
    Column(("trials_complete", "trials_pruned", "trials_failed"), "trials c/p/f",
           lambda a, c, r: (a.trials_complete, a.trials_pruned, a.trials_failed), lambda v: "/".join(map(str, v))),
    Column(("repeats_failed",), None, lambda a, c, r: a.repeats_failed),
    Column(("tuning_seconds",), None, lambda a, c, r: round(a.tuning_seconds, 1)),
    Column(("diff", "diff_ci95_low", "diff_ci95_high"), "diff vs baseline [95% CI]",
           lambda a, c, r: (c.diff, c.diff_ci_low, c.diff_ci_high), lambda v: f"{v[0]:+.4f} {_pair(v[1:])}",
           compared=True),
    Column(("p_welch",), "p Welch", lambda a, c, r: c.p_welch, _p, compared=True),
    Column(("p_mannwhitney",), "p rank", lambda a, c, r: c.p_rank, _p, compared=True),
    Column(("p_paired",), "p paired", lambda a, c, r: c.p_paired, _p, compared=True),
    Column(("p_holm",), "p Holm", lambda a, c, r: c.p_holm, _p, compared=True),
    Column(("hedges_g",), "g", lambda a, c, r: c.hedges_g, lambda v: _f(v, 2), compared=True),
    Column(("margin",), None, lambda a, c, r: c.margin, compared=True),
    Column(("p_tost",), None, lambda a, c, r: c.p_tost, compared=True),
    Column(("p_tost_holm",), "p TOST", lambda a, c, r: c.p_tost_holm, _p, compared=True),
    Column(("detectable_diff",), "detectable", lambda a, c, r: c.detectable, _f, compared=True),
    Column(("verdict",), "verdict", lambda a, c, r: c.verdict if c else "baseline", lambda v: "" if v == "baseline" else v),
    Column(("published",), None, lambda a, c, r: c.published if c else ""),
    Column(("model",), None, lambda a, c, r: a.model),
    Column(("params_count",), None, lambda a, c, r: a.params_count),
    Column(("flops_per_example",), None, lambda a, c, r: a.flops_per_example),
    Column(("examples_per_second",), None, lambda a, c, r: a.examples_per_second),
    *(Column((key,), None, lambda a, c, r, key=key: getattr(a, key)) for key in QUANTIZATION),
]


def _cells(report: Report) -> list[tuple[ArmResult, ArmComparison | None]]:
    comps = {c.arm: c for c in report.comparisons}
    return [(a, comps.get(a.arm)) for a in report.arms]


def rows(report: Report) -> list[dict[str, Any]]:
    """One flat row per arm: every column's keys (the CSV, the JSON rows and `to_frame`)."""
    out = []
    for a, c in _cells(report):
        row: dict[str, Any] = {}
        for col in COLUMNS:
            keys = [k.format(tuned=report.tuned_metric) for k in col.keys]
            value = None if col.compared and c is None else col.value(a, c, report)
            row.update(zip(keys, value if len(keys) > 1 and value is not None else [value] * len(keys)))
        out.append(row)
    return out


def _arm_lines(report: Report) -> tuple[list[str], list[list[str]]]:
    """The table's header and one line of cells per arm: the columns with a header."""
    shown = [col for col in COLUMNS if col.header is not None]
    head = [col.header.format(metric=report.metric, tuned=report.tuned_metric) for col in shown]
    body = [["" if col.compared and c is None else col.text(col.value(a, c, report)) for col in shown]
            for a, c in _cells(report)]
    return head, body


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
                     "it" + ("; size and CPU latency per example at batch size 1, float -> quantized" if any(
                         a.model_bytes for a in costs) else "") + "): " + "; ".join(_cost(a) for a in costs))
    if any(a.quantize for a in report.arms):
        lines.append(f"Arms that quantize are compared on their quantized model's {report.metric} (quantized_"
                     f"{report.metric}); the float model of the same repeats scored: " + ", ".join(
                         f"{a.arm} {_f(a.float_mean)}" for a in report.arms if a.quantize) + ".")
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
    if a.model_bytes:
        q = f" -> {_si(a.quantized_bytes)}B {a.quantize}" if a.quantize and a.quantized_bytes else ""
        parts.append(f"size {_si(a.model_bytes)}B float32{q}")
    if a.latency_ms:
        q = f" -> {_ms(a.quantized_latency_ms)}" if a.quantize and a.quantized_latency_ms else ""
        parts.append(f"latency {_ms(a.latency_ms)}{q}")
    return (f"{a.arm} ({a.model})" if a.model else a.arm) + ": " + ", ".join(parts)


def _ms(x: float) -> str:
    """A latency given in ms, in µs below 0.1 ms."""
    return f"{x * 1e3:.3g} µs" if x < 0.1 else f"{x:.3g} ms"


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
    fronts = _fronts(report)
    for a in report.arms:
        front = (f"; {len(fronts[a.arm])} of {len(a.trial_objectives)} trials on the Pareto front"
                 if a.arm in fronts else "")
        lines.append(f"- **{a.arm}**: best trial {_f(a.best_trial)} with {a.best_params}; "
                     f"tuning time {a.tuning_seconds:.0f} s{front}")
    if fronts:
        lines += ["", "## Pareto fronts of the tuning trials", "",
                  f"Each arm's trials that no other trial of the arm beats in every objective, by "
                  f"{report.objectives[-1]} (pareto_front.png draws them):", ""]
        for arm, points in fronts.items():
            lines.append(f"- **{arm}**: " + "; ".join(
                ", ".join(f"{m} {v:.4g}" for m, v in zip(report.objectives, p)) for p in points))
    return "\n".join(lines) + "\n"


def _fronts(report: Report) -> dict[str, list[list[float]]]:
    """Each arm's Pareto front over the objectives of a multi-objective search, sorted by the last objective."""
    if not report.objectives:
        return {}
    from dlbench.plots import pareto_front  # noqa: PLC0415

    up = [direction(m) == "maximize" for m in report.objectives]
    return {a.arm: sorted((a.trial_objectives[i] for i in pareto_front(a.trial_objectives, up)),
                          key=lambda p: p[-1]) for a in report.arms if a.trial_objectives}


# === Plots and the comparison run ===


def plots(report: Report, exp: Experiment, storage_url: str, tracker: T.Tracker, outdir: Path) -> list[Path]:
    """Learning curves, final-metric distribution, expected best score vs trials, the Pareto fronts of a
    multi-objective search, and Optuna's plots of each arm's study (plots.OPTUNA_PLOTS)."""
    from dlbench import plots as P

    base = report.baseline
    jobs = [  # (file, how to draw it): everything read from the stores first, so drawing needs no connection
        (outdir / "learning_curves.png", functools.partial(
            P.learning_curves, gather.learning_curves(exp, tracker), exp.metric, outdir / "learning_curves.png",
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
        study = P.in_memory(gather.study_of(exp, storage_url, arm))
        if study is not None:
            for kind in P.OPTUNA_PLOTS:
                path = outdir / f"optuna_{kind}_{arm}.png"
                jobs.append((path, functools.partial(P.optuna_plot, study, kind, f"{exp.name} / {arm}", path,
                                                     exp.metric)))
    P.draw(jobs)
    return [path for path, _ in jobs if path.exists()]


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
        for key in ("params_count", "flops_per_example", "examples_per_second", *QUANTIZATION[:4], "float_mean"):
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
    result = build(exp, gather.gather(exp, storage_url, tracker))
    if write:
        log(result, exp, storage_url, tracker, T.manifest(device="none (no training)",
                                                          backend="none"))
    return result
