"""The convolutional experiments: each validates and runs end to end with --quick, and every run records the
model's cost (parameters, FLOPs per example, throughput) in MLflow."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from conftest import ROOT, dlbench
from dlbench import data, models, spaces
from dlbench.spec import Choice, Range

pytestmark = pytest.mark.e2e  # end to end: trains, spawns workers or starts servers

CNN_SPECS = ["residual_vs_plain", "architectures_mnist1d", "separable_conv", "pooling", "cnn_vs_mlp"]


def _repeats(uri: str, experiment: str):
    assert MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment) is not None, experiment
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[experiment], filter_string="tags.`dlbench.role` = 'repeat'")


# Arms run end to end where all of them would be slow (ResNet-32 traces for long); the others are built.
QUICK_ARMS = {"residual_vs_plain": "plain_20,residual_20"}


def _built_params(name: str, arm_names: list[str]) -> dict[str, int]:
    exp = spaces.load(ROOT / "experiments" / f"{name}.toml")
    info = data.load(exp.dataset.name, exp.dataset.options)
    out = {}
    for arm in (a for a in exp.arms if a.name in arm_names):
        searched = {k: (v.low if isinstance(v, Range) else v.choices[0]) for k, v in exp.params_for(arm).items()
                    if isinstance(v, (Range, Choice))}
        params = spaces.resolve(exp, arm, searched)
        out[arm.name] = models.get(params.model_name).build(params.model, info).count_params()
    return out


# One spec end to end in `make test`; every spec in the slow tier (`make reproduce`), which also runs them in full.
@pytest.mark.parametrize("name", [n if n == "cnn_vs_mlp" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in CNN_SPECS])
def test_cnn_experiment_runs_quick_and_logs_model_cost(name, stores):
    storage, uri = stores
    exp = spaces.load(ROOT / "experiments" / f"{name}.toml")
    arms = ["--arms", QUICK_ARMS[name]] if name in QUICK_ARMS else []
    dlbench("run", f"experiments/{name}.toml", "--quick", "--trials", "1", "--seeds", "1", "--epochs", "1",
            "--storage", storage, "--tracking-uri", uri, "--no-progress", *arms)
    runs = _repeats(uri, f"{exp.name}-quick")
    if arms:
        exp = spaces.load(ROOT / "experiments" / f"{name}.toml", arms=QUICK_ARMS[name].split(","))
    assert sorted(runs["tags.dlbench.arm"]) == sorted(exp.arm_names)
    for column in ("metrics.params_count", "metrics.flops_per_example", "metrics.examples_per_second",
                   "metrics.test_accuracy"):
        assert (runs[column] > 0).all(), (column, runs[column].tolist())
    models = dict(zip(runs["tags.dlbench.arm"], runs["params.model"]))
    assert models == {a.name: exp.model_for(a) for a in exp.arms}
    params = dict(zip(runs["tags.dlbench.arm"], runs["metrics.params_count"]))
    flops = dict(zip(runs["tags.dlbench.arm"], runs["metrics.flops_per_example"]))
    if name == "cnn_vs_mlp":  # the equal parameter budget the spec's comments derive by hand
        assert params == {"mlp": 30_250, "cnn": 31_050}
    if name == "separable_conv":
        assert params["separable"] < params["standard"] / 3 and flops["separable"] < flops["standard"] / 3
    if name == "residual_vs_plain":  # the same layers; residual adds only the two 1x1 projection shortcuts (+ BN)
        params.update(_built_params(name, ["plain_32", "residual_32"]))  # the deep pair is built, not trained here
        for depth in (20, 32):
            assert params[f"residual_{depth}"] - params[f"plain_{depth}"] == (16 * 32 + 4 * 32) + (32 * 64 + 4 * 64)
        assert params["plain_20"] < params["plain_32"]
