"""Post-training quantization (dlbench.quantize): which tool quantizes which model, what the quantized model keeps
of the float one, what a repeat run logs, and the specs that are refused before any training."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pytest

from conftest import dlbench, quick_run, write_spec
from dlbench import data, models, quantize, spaces
from dlbench.spec import SpecError


def _trained(model_name: str, shape: str, epochs: int = 8, **hp):
    """A small classifier trained on the digits (8x8, flat or image), with its data."""
    import keras

    info = data.load("digits", {"shape": shape} if shape != "flat" else {})
    entry = models.get(model_name)
    keras.utils.set_random_seed(0)
    model = entry.build(entry.hparams(**hp), info)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(info.train.x, info.train.y, epochs=epochs, batch_size=64, verbose=0)
    return model, info


@pytest.fixture(scope="module")
def mlp():
    return _trained("mlp", "flat")


@pytest.fixture(scope="module")
def cnn():
    return _trained("cnn", "image", blocks=2, filters=16, kernel_size=3, dense=64)


def test_dense_models_go_through_keras_and_convolutional_ones_through_tflite(mlp, cnn):
    info = data.load("digits", {"shape": "image"})
    mobilenet = models.get("mobilenet").build(models.get("mobilenet").hparams(blocks=2), info)
    assert (quantize.path(mlp[0]), quantize.path(cnn[0]), quantize.path(mobilenet)) == ("keras", "tflite", "tflite")


def test_a_recurrent_model_cannot_be_quantized():
    info = data.load("digits", {"shape": "rows"})
    rnn = models.get("rnn").build(models.get("rnn").hparams(), info)
    with pytest.raises(quantize.Unsupported, match="recurrent layers"):
        quantize.path(rnn)


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_int8_is_smaller_and_predicts_as_the_float_model_does(which, request):
    model, info = request.getfixturevalue(which)
    float_accuracy = float(np.mean(np.argmax(model.predict(info.test.x, verbose=0), -1) == info.test.y))
    assert float_accuracy > 0.85  # the toy model learned something worth keeping
    metrics, _ = quantize.measure(model, info, "int8", seed=0)
    # int8 weights: a quarter of the float32 bytes; scales, biases and (tflite) the file's graph come on top, which
    # in this small CNN's file weigh about half as much as its int8 weights.
    assert metrics["quantized_bytes"] < metrics["model_bytes"] / (3 if which == "mlp" else 2)
    assert metrics["quantized_agreement"] >= 0.95
    assert abs(metrics["quantized_test_accuracy"] - float_accuracy) <= 0.03
    assert metrics["latency_ms"] > 0 and metrics["quantized_latency_ms"] > 0


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_float16_about_halves_the_size_and_keeps_the_predictions(which, request):
    model, info = request.getfixturevalue(which)
    metrics, _ = quantize.measure(model, info, "float16")
    assert 0.45 <= metrics["quantized_bytes"] / metrics["model_bytes"] <= 0.6
    assert metrics["quantized_agreement"] >= 0.99


def test_the_float_model_is_left_unchanged(mlp):
    model, info = mlp
    before = [w.copy() for w in model.get_weights()]
    quantize.measure(model, info, "int8")
    assert [str(w.dtype) for w in model.get_weights()] == ["float32"] * len(before)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_per_tensor_int8_keeps_one_scale_per_tensor(cnn):
    # TFLite's per-channel scales cost bytes: a per-tensor file is smaller; both still classify.
    model, info = cnn
    per_channel, _ = quantize.measure(model, info, "int8", "per_channel")
    per_tensor, _ = quantize.measure(model, info, "int8", "per_tensor")
    assert per_tensor["quantized_bytes"] < per_channel["quantized_bytes"]
    assert per_tensor["quantized_test_accuracy"] > 0.5


def test_none_measures_the_float_model_only(cnn):
    metrics, route = quantize.measure(*cnn, "none")
    assert route == "tflite" and set(metrics) == {"model_bytes", "latency_ms"} and metrics["latency_ms"] > 0


# === Refused before training ===

SPEC = """
name = "q"
model = "{model}"
metric = "{metric}"
baseline = "a"
seeds = 1
budget = {{ trials = 1, epochs = 1 }}
{top}
[dataset]
name = "digits"
shape = "{shape}"

[fixed]
learning_rate = 0.003
{extra}
[arms.a]
quantize = "{mode}"
"""


def _spec(tmp_path, model="mlp", shape="flat", mode="int8", metric="val_accuracy", extra="", top=""):
    return write_spec(tmp_path, SPEC.format(model=model, shape=shape, mode=mode, metric=metric, extra=extra, top=top))


def test_a_recurrent_model_is_refused_naming_the_field(tmp_path):
    path = _spec(tmp_path, model="rnn", shape="rows")
    with pytest.raises(SpecError) as e:
        spaces.load(path)
    assert e.value.field == "arms.a.quantize" and "recurrent layers" in e.value.message


def test_per_tensor_is_refused_on_the_keras_path(tmp_path):
    with pytest.raises(SpecError) as e:
        spaces.load(_spec(tmp_path, extra='quantize_granularity = "per_tensor"'))
    assert e.value.field == "fixed.quantize_granularity" and "no per-tensor mode" in e.value.message


def test_a_model_that_is_not_a_classifier_is_refused(tmp_path):
    with pytest.raises(SpecError) as e:
        spaces.load(_spec(tmp_path, model="autoencoder", metric="val_reconstruction_error"))
    assert e.value.field == "arms.a.quantize" and "classifiers only" in e.value.message


def test_an_unknown_mode_is_refused(tmp_path):
    with pytest.raises(SpecError) as e:
        spaces.load(_spec(tmp_path, mode="int4"))
    assert e.value.field == "arms.a.quantize" and "'float16'" in e.value.message


@pytest.mark.e2e
def test_convolutions_off_tensorflow_exit_2_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    path = _spec(tmp_path, model="cnn", shape="image")
    proc = dlbench("run", str(path), "--storage", str(tmp_path / "studies"), "--tracking-uri",
                   f"sqlite:///{tmp_path / 'mlflow.db'}", "--no-progress", check=False)
    assert proc.returncode == 2
    assert "field `arms.a.quantize`" in proc.stderr and "TensorFlow backend" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing ran


# === What a repeat run logs ===


@pytest.mark.e2e
def test_a_repeat_logs_its_int8_models_size_latency_and_test_accuracy_by_value(tmp_path, stores):
    spec = _spec(tmp_path, top='save_models = "repeats"')
    dlbench("run", str(spec), "--storage", stores[0], "--tracking-uri", stores[1], "--no-progress")
    mlflow.set_tracking_uri(stores[1])
    (run,) = mlflow.search_runs(experiment_names=["q"], filter_string="tags.`dlbench.role` = 'repeat'",
                                output_format="list")
    logged = run.data.metrics
    assert run.data.tags["dlbench.quantize_path"] == "keras"
    assert 0 < logged["quantized_bytes"] < logged["model_bytes"] / 3
    assert logged["latency_ms"] > 0 and logged["quantized_latency_ms"] > 0
    # The logged int8 accuracy is that of the saved float model quantized again (both steps are deterministic).
    import keras

    model = keras.saving.load_model(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                                        artifact_path="model/model.keras"))
    again, _ = quantize.measure(model, data.load("digits", {}), "int8", seed=0)
    assert logged["quantized_test_accuracy"] == pytest.approx(again["quantized_test_accuracy"], abs=1e-9)
    assert logged["model_bytes"] == again["model_bytes"] and logged["quantized_bytes"] == again["quantized_bytes"]


@pytest.mark.e2e
def test_the_quantization_experiment_runs_quick_and_compares_size_and_latency(stores):
    exp, runs = quick_run("quantization", *stores)
    assert sorted(runs["tags.dlbench.arm"]) == sorted(exp.arm_names)
    assert (runs["tags.dlbench.quantize_path"] == "tflite").all()
    assert (runs["metrics.model_bytes"] > 0).all() and (runs["metrics.latency_ms"] > 0).all()
    by_arm = runs.set_index("tags.dlbench.arm")
    quantized = by_arm.drop(["cnn_float32", "mobilenet_float32"])
    assert (quantized["metrics.quantized_bytes"] < quantized["metrics.model_bytes"]).all()
    assert quantized["metrics.quantized_test_accuracy"].between(0, 1).all()
    assert by_arm.loc[["cnn_float32", "mobilenet_float32"], "metrics.quantized_bytes"].isna().all()
    # Seed 0 of every arm of a model trains the same float model: the arms differ in its quantization only.
    for model in ("cnn", "mobilenet"):
        floats = by_arm.loc[[a for a in exp.arm_names if a.startswith(model)], "metrics.test_accuracy"]
        assert floats.nunique() == 1, floats
    for fmt in ("table", "md"):
        out = dlbench("compare", "quantization-quick", "--format", fmt, "--storage", stores[0], "--tracking-uri",
                      stores[1], "--no-log").stdout
        cost = next(line for line in out.splitlines() if line.startswith("Cost per arm"))
        assert "cnn_int8 (cnn):" in cost and "float32 -> " in cost and "B int8, latency " in cost
        assert "quantized model's test_accuracy" in out
    csv = dlbench("compare", "quantization-quick", "--format", "csv", "--storage", stores[0], "--tracking-uri",
                  stores[1], "--no-log").stdout.splitlines()
    header = csv[0].split(",")
    int8 = dict(zip(header, next(r for r in csv if r.startswith("cnn_int8,")).split(",")))
    assert int8["quantize"] == "int8" and float(int8["quantized_bytes"]) < float(int8["model_bytes"])
    assert not math.isnan(float(int8["quantized_latency_ms"]))
