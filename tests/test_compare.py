"""`dlbench compare`: the report from the stores, consistent with MLflow, with its artifacts on the comparison run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import SPECS, dlbench, write_spec
from dlbench import cli

pytestmark = pytest.mark.e2e  # end to end: trains, spawns workers or starts servers

TINY = str(SPECS / "tiny.toml")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny experiment (3 seeds so that tests can run), shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("cmp")
    storage, uri = str(tmp / "studies"), f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}"
    out = dlbench("run", TINY, "--storage", storage, "--tracking-uri", uri, "--seeds", "3")
    return storage, uri, out


def test_run_ends_with_the_comparison_table(finished):
    _, _, out = finished
    assert "tiny: comparison of 2 arms" in out.stdout
    assert "relu" in out.stdout and "tanh (baseline)" in out.stdout
    assert "p Holm" in out.stdout and "Budget: every arm: 2 tuning trials budgeted" in out.stdout


def test_compare_json_agrees_with_mlflow(finished):
    storage, uri, _ = finished
    out = dlbench("compare", "tiny", "--format", "json", "--storage", storage, "--tracking-uri", uri)
    report = json.loads(out.stdout)
    assert report["metric"] == "test_accuracy" and report["tuned_metric"] == "val_accuracy"
    assert report["baseline"] == "tanh" and report["higher_is_better"] is True
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tiny")
    for arm in report["arms"]:
        runs = client.search_runs([exp.experiment_id], f"tags.`dlbench.role` = 'repeat' AND "
                                  f"tags.`dlbench.arm` = '{arm['arm']}' AND attributes.status = 'FINISHED'")
        values = sorted(r.data.metrics["test_accuracy"] for r in runs)
        assert arm["n"] == 3 == len(values)
        assert sorted(arm["values"].values()) == pytest.approx(values)
        assert arm["mean"] == pytest.approx(sum(values) / 3)
        assert arm["ci_low"] <= arm["mean"] <= arm["ci_high"]
        assert arm["trials_complete"] + arm["trials_pruned"] == 2
        assert len(arm["expected_best"]) == 2
        # The model's cost is the median of what its repeats logged.
        assert arm["model"] == "mlp"
        for key in ("params_count", "flops_per_example", "examples_per_second"):
            logged = sorted(r.data.metrics[key] for r in runs)
            assert arm[key] == pytest.approx(logged[1]) and arm[key] > 0, key
    (comp,) = report["comparisons"]
    assert comp["arm"] == "relu"
    relu, tanh = (next(a for a in report["arms"] if a["arm"] == n) for n in ("relu", "tanh"))
    assert comp["diff"] == pytest.approx(relu["mean"] - tanh["mean"])
    assert comp["n_pairs"] == 3
    assert comp["verdict"] in ("better", "worse", "equivalent", "inconclusive")
    assert comp["margin"] == 0.01 and comp["detectable"] > 0 and 0 <= comp["p_tost"] <= 1
    for arm in report["arms"]:  # bootstrap intervals stay inside an accuracy's bounds
        assert 0 <= arm["ci_low"] <= arm["mean"] <= arm["ci_high"] <= 1
    assert math.isclose(comp["p_holm"], comp["p_welch"], rel_tol=1e-9) or math.isnan(comp["p_welch"])  # one test


def test_comparison_run_has_report_and_plots(finished):
    storage, uri, _ = finished
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tiny")
    (run,) = client.search_runs([exp.experiment_id], "tags.`dlbench.role` = 'comparison'")
    assert run.info.run_name == "comparison" and run.info.status == "FINISHED"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"comparison.md", "comparison.csv", "comparison.json", "learning_curves.png", "distribution.png",
            "expected_best_vs_trials.png", "optuna_history_relu.png", "optuna_history_tanh.png"} <= names
    for kind in ("parallel_coordinate", "slice"):  # one searched parameter: no contour (a .txt says why)
        assert {f"optuna_{kind}_relu.png", f"optuna_{kind}_tanh.png"} <= names
    assert "optuna_contour_relu.txt" in names
    local = client.download_artifacts(run.info.run_id, "learning_curves.png")
    with open(local, "rb") as f:
        head = f.read(8)
    assert head == b"\x89PNG\r\n\x1a\n"
    # Each arm's mean is a metric of the comparison run, so the MLflow compare view shows it.
    assert {"relu.test_accuracy.mean", "tanh.test_accuracy.mean", "relu.params_count"} <= set(run.data.metrics)
    assert run.data.tags["dlbench.verdict.relu"] in ("better", "worse", "equivalent", "inconclusive")


def test_compare_formats(finished):
    storage, uri, _ = finished
    out = dlbench("compare", TINY, "--format", "md,csv", "--storage", storage, "--tracking-uri", uri, "--no-log")
    assert "# tiny: comparison" in out.stdout
    assert "Cost per arm" in out.stdout and "tanh (mlp): " in out.stdout
    assert "| arm | n |" in out.stdout
    assert "arm,n,mean,std,ci95_low,ci95_high" in out.stdout


def test_a_reference_added_to_the_spec_after_the_run_is_compared(finished, tmp_path):
    # The reference is prose (outside the spec hash): comparing through the file uses the file's current one,
    # while the budget stays as the experiment ran (--seeds 3).
    storage, uri, _ = finished
    text = Path(TINY).read_text() + (
        '\n[reference]\nsource = "A later paper"\nclaim = "relu beats tanh"\nresults = { tanh = 0.5, relu = 0.9 }\n'
        'results_metric = "accuracy"\nlower_is_better = false\n')
    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(text)
    out = dlbench("compare", str(spec_file), "--format", "json", "--storage", storage, "--tracking-uri", uri,
                  "--no-log")
    report = json.loads(out.stdout)
    assert report["reference"]["source"] == "A later paper"
    assert all(a["n"] == 3 for a in report["arms"])


def test_compare_unknown_name_exits_2_saying_what_to_run(capsys, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli.main(["compare", "no-such-experiment", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "no experiment named 'no-such-experiment'" in err and "dlbench run" in err
    assert not (tmp_path / "mlflow.db").exists()
    assert cli.main(["compare", "tiny", "--format", "xml", "--tracking-uri", uri]) == 2


def test_compare_without_finished_repeats_exits_2(tmp_path):
    storage, uri = str(tmp_path / "studies"), f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = dlbench("compare", TINY, "--storage", storage, "--tracking-uri", uri, check=False)
    assert out.returncode == 2
    assert "has no finished seed repeats yet" in out.stderr and "dlbench run" in out.stderr
