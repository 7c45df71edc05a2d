"""The comparison without stores: statistics from gathered results (comparison.build), every format from one list
of columns (reporting.COLUMNS)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math

import optuna
import pytest

import dlbench
from conftest import SPECS
from dlbench import comparison, reporting, stats
from dlbench.comparison import ArmData
from dlbench.spec import SpecError

TINY = dlbench.load_spec(SPECS / "tiny.toml", seeds=5)


def _arm(name: str, values: list[float], trial_values: list[float]) -> ArmData:
    study = optuna.create_study(direction="maximize")
    for v in trial_values:
        study.add_trial(optuna.trial.create_trial(value=v, params={"learning_rate": v / 10},
                                                  distributions={"learning_rate": optuna.distributions.FloatDistribution(0, 1)}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    return ArmData(arm=name, values=dict(enumerate(values)), tuned=[v + 0.01 for v in values], repeats_failed=1,
                   costs={"params_count": 100.0, "flops_per_example": 200.0, "examples_per_second": None},
                   model="mlp", trials=study.get_trials(), directions=list(study.directions))


def _report(relu: list[float], tanh: tuple[float, ...] = (0.80, 0.81, 0.79, 0.80, 0.82)):
    return comparison.build(TINY, [_arm("tanh", list(tanh), [0.7, 0.75]), _arm("relu", relu, [0.8, 0.9, 0.85])])


def test_build_computes_each_arms_summary_and_its_test_against_the_baseline():
    report = _report([0.90, 0.91, 0.89, 0.92, 0.90])
    tanh, relu = report.arms
    assert (tanh.n, relu.n) == (5, 5) and relu.mean == pytest.approx(0.904)
    assert relu.best_trial == 0.9 and relu.best_params == {"learning_rate": 0.09}
    assert (relu.trials_complete, relu.trials_failed, relu.repeats_failed) == (3, 1, 1)
    assert relu.tuned_mean == pytest.approx(0.914) and relu.params_count == 100.0
    (c,) = report.comparisons
    direct = stats.compare(list(relu.values.values()), list(tanh.values.values()), arm_seeds=list(range(5)),
                           base_seeds=list(range(5)), margin=0.01)
    assert c.arm == "relu" and c.diff == pytest.approx(direct.diff) and c.p_welch == pytest.approx(direct.p_welch)
    assert c.p_holm == pytest.approx(c.p_welch) and c.verdict == "better"  # one comparison: Holm changes nothing
    # Every statistic stats.compare computes is in the comparison, under its own name, in the JSON too.
    fields = {f.name for f in dataclasses.fields(stats.Comparison)}
    assert fields <= set(json.loads(report.to_json())["comparisons"][0])


def test_equal_arms_within_the_margin_are_equivalent_and_far_ones_inconclusive_with_few_seeds():
    same = _report([0.801, 0.800, 0.802, 0.803, 0.800], tanh=(0.800, 0.802, 0.801, 0.799, 0.803))
    assert same.comparisons[0].verdict == "equivalent"
    noisy = _report([0.60, 0.99, 0.70, 0.95, 0.75])
    assert noisy.comparisons[0].verdict == "inconclusive" and noisy.comparisons[0].detectable > 0.1


def test_every_format_is_drawn_from_the_one_list_of_columns():
    report = _report([0.90, 0.91, 0.89, 0.92, 0.90])
    keys = [k.format(tuned=report.tuned_metric) for col in reporting.COLUMNS for k in col.keys]
    rows = reporting.rows(report)
    assert [list(r) for r in rows] == [keys, keys]
    assert rows[0]["verdict"] == "baseline" and rows[0]["p_holm"] is None and rows[0]["arm"] == "tanh (baseline)"
    assert rows[1]["diff_ci95_low"] == report.comparisons[0].diff_ci_low and rows[1]["detectable_diff"] > 0
    assert next(csv.reader(io.StringIO(reporting.format_report(report, "csv")))) == keys
    table = reporting.format_report(report, "table").splitlines()
    shown = [col.header.format(metric=report.metric, tuned=report.tuned_metric) for col in reporting.COLUMNS
             if col.header]
    assert all(h in table[1] for h in shown)
    assert "tanh (baseline)" in table[3] and "better" in table[4] and "better" not in table[3]
    md = reporting.format_report(report, "md")
    assert "| " + " | ".join(shown) + " |" in md


def test_no_finished_repeat_is_an_error_saying_what_to_run():
    with pytest.raises(SpecError, match="dlbench run"):
        comparison.build(TINY, [_arm("tanh", [], []), _arm("relu", [], [])])
    assert math.isnan(comparison.equivalence_margin(dataclasses.replace(TINY, metric="val_loss"), math.nan))
