"""Reproductions of the published ablations at full budget (slow: `make reproduce`, not CI).

Each test runs a shipped experiment into fresh stores, writes its comparison to docs/reproductions/<name>.md and
asserts the direction that our measurements support. The asserted directions were written after measuring; a
direction that did not reproduce is asserted as what we measured and explained in docs/reproductions.md.
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, dlbench

pytestmark = pytest.mark.slow
OUT = ROOT / "docs" / "reproductions"


def _reproduce(tmp_path, spec: str) -> dict:
    storage, uri = str(tmp_path / "studies"), f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    dlbench("run", f"experiments/{spec}", "--storage", storage, "--tracking-uri", uri, "--no-progress",
            timeout=3600)
    report = json.loads(dlbench("compare", f"experiments/{spec}", "--format", "json", "--storage", storage,
                                "--tracking-uri", uri, "--no-log").stdout)
    md = dlbench("compare", f"experiments/{spec}", "--format", "md", "--storage", storage, "--tracking-uri", uri,
                 "--no-log").stdout
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{report['experiment']}.md").write_text(md)
    return report


def _verdicts(report: dict) -> dict[str, str]:
    return {c["arm"]: c["verdict"] for c in report["comparisons"]}


def test_relu_and_tanh_beat_sigmoid_in_a_deep_mlp(tmp_path):
    # Glorot & Bengio 2010: with standard init and plain SGD, deep sigmoid nets train worse than tanh (and ReLU).
    report = _reproduce(tmp_path, "relu_vs_sigmoid.toml")
    assert _verdicts(report) == {"tanh": "better", "relu": "better"}
    for c in report["comparisons"]:
        assert c["p_holm"] < 0.05


def test_dropout_does_not_help_a_tuned_mlp_on_300_digits(tmp_path):
    # Srivastava et al. 2014 report lower MNIST test error with dropout (1.60% -> 1.25%, 60k examples, long
    # training). Measured here on 300 digits with 40 epochs and a tuned learning rate: no significant gain
    # (dropout 0.937 +- 0.012 vs none 0.949 +- 0.004 test accuracy, Welch p = 0.08). We assert what we measured:
    # dropout is not significantly better. See docs/reproductions.md for why.
    report = _reproduce(tmp_path, "dropout.toml")
    assert _verdicts(report)["dropout"] != "better"
