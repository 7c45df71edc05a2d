"""The Python API: load_spec, run and compare from Python, agreeing with the CLI, honouring the same environment."""

from __future__ import annotations

import json
import math

import pytest

import dlbench
from conftest import SPECS, dlbench as dlbench_cli
from dlbench.spec import SpecError

TINY = SPECS / "tiny.toml"


def test_the_public_names_are_importable_and_import_dlbench_stays_light():
    import subprocess
    import sys

    code = ("import sys, dlbench; assert 'tensorflow' not in sys.modules and 'mlflow' not in sys.modules; "
            "print(sorted(n for n in dlbench.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for name in ("load_spec", "run", "compare", "Report", "register_model", "register_dataset", "DatasetInfo"):
        assert name in out.stdout
        assert getattr(dlbench, name) is not None


def test_load_spec_takes_overrides_like_the_command_line():
    exp = dlbench.load_spec(TINY, trials=3, seeds=4, **{"fixed.width": 8}, dataset__n=200)
    assert exp.budget.trials == 3 and exp.seeds == 4
    assert exp.fixed["width"] == 8 and exp.dataset.options["n"] == 200
    assert exp.name == "tiny.width-8.n-200"  # a variant is stored apart, as with --set
    same = dlbench.load_spec(TINY, sets=["fixed.width=8", "dataset.n=200"])
    assert same.spec_hash == exp.spec_hash
    assert dlbench.load_spec(TINY, name="mine", arms="relu").arm_names == ("relu",)


def test_load_spec_takes_a_mapping_and_checks_it_like_a_file():
    import tomllib

    raw = tomllib.loads(TINY.read_text())
    assert dlbench.load_spec(raw).spec_hash == dlbench.load_spec(TINY).spec_hash
    with pytest.raises(SpecError) as e:
        dlbench.load_spec({**raw, "model": "nope"})
    assert e.value.field == "model" and "known models" in e.value.message
    with pytest.raises(SpecError) as e:
        dlbench.load_spec(TINY, **{"fixed.widht": 8})
    assert e.value.field == "fixed.widht" and "allowed" in e.value.message


@pytest.mark.e2e
def test_run_and_compare_from_python_agree_with_the_cli_and_use_the_environment(tmp_path, monkeypatch):
    storage, uri = str(tmp_path / "studies"), f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("DLBENCH_STORAGE", storage)  # as the CLI: the API reads the same variables
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    report = dlbench.run(TINY, progress=False, epochs=2)
    assert (tmp_path / "studies").is_dir() and (tmp_path / "mlruns" / "mlflow.db").is_file()

    frame = report.to_frame()
    assert list(frame.index) == ["tanh", "relu"]
    assert {"n", "mean", "std", "ci95_low", "ci95_high", "p_holm", "verdict"} <= set(frame.columns)
    cli = json.loads(dlbench_cli("compare", "tiny", "--format", "json", "--no-log", "--storage", storage,
                                 "--tracking-uri", uri).stdout)
    for arm in cli["arms"]:
        row = frame.loc[arm["arm"]]
        assert row["n"] == arm["n"] == 2
        assert math.isclose(row["mean"], arm["mean"]) and math.isclose(row["std"], arm["std"])
    comps = report.comparisons_frame()
    assert list(comps.index) == ["relu"]
    assert comps.loc["relu", "verdict"] == cli["comparisons"][0]["verdict"]
    assert math.isclose(comps.loc["relu", "p_holm"], cli["comparisons"][0]["p_holm"])

    again = dlbench.compare("tiny", write=False)  # by name, from the stores the environment names
    assert again.to_frame()["mean"].tolist() == frame["mean"].tolist()
    html = report._repr_html_()
    assert "<table" in html and "relu" in html and "baseline tanh" in html
    assert "tiny" in repr(report) and "relu:" in repr(report)
    # Every trial and repeat run names its data as an MLflow dataset input (the runs table's Dataset column).
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], "tags.`dlbench.role` = 'repeat'")
    assert runs
    for run in runs:
        (given,) = run.inputs.dataset_inputs
        assert given.dataset.name == "spirals" and given.dataset.source_type == "dlbench"
        profile = json.loads(given.dataset.profile)
        assert profile["train"] + profile["val"] + profile["test"] == 300 and profile["task"] == "classification"
        assert json.loads(given.dataset.source) == {"dataset": "spirals", "n": 300}
        assert [t.value for t in given.tags if t.key == "mlflow.data.context"] == ["training"]
    plots = report.plots(tmp_path / "plots")
    assert {"learning_curves", "distribution", "expected_best_vs_trials"} <= set(plots)
    assert all(p.stat().st_size > 1000 for p in plots.values())
