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


def test_greedy_pretraining_rescues_a_deep_sigmoid_mlp_with_few_labels(tmp_path):
    # Erhan et al. 2010: unsupervised layer-wise pretraining beats random init for deep sigmoid nets, most with few
    # labels. Measured (4x128 sigmoid, small uniform init, plain SGD, 200 labeled + 997 unlabeled digits, 8
    # trials, 60 epochs): random init never left chance (0.101 +- 0.002 test accuracy), AE pretraining
    # 0.889 +- 0.013, DAE pretraining 0.877 +- 0.006; both better with Holm p < 0.0001.
    report = _reproduce(tmp_path, "pretraining.toml")
    assert _verdicts(report) == {"ae_pretrained": "better", "dae_pretrained": "better"}
    for c in report["comparisons"]:
        assert c["p_holm"] < 0.05 and c["diff"] > 0.5


def test_pretraining_brings_no_gain_to_a_relu_he_adam_mlp(tmp_path):
    # The modern control: with ReLU units, He init and Adam, random init already reaches 0.930 +- 0.007 on the
    # same 200 labels; AE pretraining 0.930 +- 0.010 and DAE pretraining 0.921 +- 0.009, no significant difference
    # (Holm p 1.0 and 0.22). We assert what we measured: no pretrained arm is better, and none is far off.
    report = _reproduce(tmp_path, "pretraining_modern.toml")
    assert "better" not in _verdicts(report).values()
    for c in report["comparisons"]:
        assert abs(c["diff"]) < 0.03


def test_linear_autoencoder_reaches_pcas_error_for_every_k(tmp_path):
    # Baldi & Hornik 1989. Measured after 100 Adam epochs: +1.0% (k=2), +1.2% (k=8), +1.1% (k=16) above PCA's
    # test reconstruction error, inside the spec's 5% tolerance.
    report = _reproduce(tmp_path, "linear_ae_vs_pca.toml")
    matches = {m["arm"]: m for m in report["reference_matches"]}
    assert sorted(matches) == ["k16", "k2", "k8"]
    assert all(m["within"] for m in matches.values())
