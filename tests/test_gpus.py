"""GPU placement with a fake device list, the trainer's speed settings read back from the compiled model, and the
input errors around both."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import SPECS, dlbench, write_spec
from dlbench import data, gpus, models, runtime, spaces, train
from dlbench.models import mlp
from dlbench.spec import SpecError

TINY = str(SPECS / "tiny.toml")
FAKE = "0:Fake GPU A;1:Fake GPU B;3:Fake GPU D"


def test_gpus_are_selected_by_index_or_all_and_a_missing_one_lists_what_the_machine_has():
    seen = [("0", "A"), ("1", "B"), ("3", "D")]
    assert gpus.select("all", seen) == ["0", "1", "3"]
    assert gpus.select("3,0", seen) == ["3", "0"]
    with pytest.raises(ValueError, match=r"no GPU '2' on this machine; it shows: 0 \(A\), 1 \(B\), 3 \(D\)"):
        gpus.select("0,2", seen)
    with pytest.raises(ValueError, match="shows no NVIDIA GPU"):
        gpus.select("all", [])


def test_each_worker_sees_only_its_gpu_with_memory_growth_and_no_preallocation():
    envs = gpus.worker_environments(["0", "3"], per_gpu=2)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "0", "3", "3"]
    assert all(e["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and e["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
               for e in envs)


def test_the_fake_device_list_stands_in_for_nvidia_smi(monkeypatch):
    monkeypatch.setenv(gpus.FAKE_ENV, FAKE)
    assert gpus.detect() == [("0", "Fake GPU A"), ("1", "Fake GPU B"), ("3", "Fake GPU D")]
    monkeypatch.setenv(gpus.FAKE_ENV, "")
    assert gpus.detect() == []


@pytest.mark.e2e
def test_run_places_one_worker_per_listed_gpu_and_tags_each_run_with_its_gpu(stores, monkeypatch):
    storage, uri = stores
    monkeypatch.setenv(gpus.FAKE_ENV, FAKE)
    out = dlbench("run", TINY, "--quick", "--storage", storage, "--tracking-uri", uri, "--gpus", "0,3",
                  "--no-progress")
    assert "2 workers started on GPUs 0,3 (1 per GPU)" in out.stderr
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tiny-quick")
    runs = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags["dlbench.role"] in ("trial", "repeat")]
    by_gpu = Counter(r.data.tags["dlbench.cuda_visible_devices"] for r in runs)
    assert set(by_gpu) == {"0", "3"}  # each worker saw only its own GPU, set before it imported a framework
    assert all(r.data.tags["dlbench.device"] for r in runs)


@pytest.mark.e2e
def test_gpus_errors_exit_2_and_create_nothing(tmp_path, monkeypatch):
    storage, uri = str(tmp_path / "studies"), f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv(gpus.FAKE_ENV, FAKE)
    out = dlbench("run", TINY, "--storage", storage, "--tracking-uri", uri, "--gpus", "0,5", check=False)
    assert out.returncode == 2
    assert "--gpus" in out.stderr and "no GPU '5'" in out.stderr and "0 (Fake GPU A), 1 (Fake GPU B)" in out.stderr
    monkeypatch.setenv(gpus.FAKE_ENV, "")
    out = dlbench("run", TINY, "--storage", storage, "--tracking-uri", uri, "--gpus", "all", check=False)
    assert out.returncode == 2 and "shows no NVIDIA GPU" in out.stderr
    out = dlbench("run", TINY, "--storage", storage, "--tracking-uri", uri, "--workers-per-gpu", "2", check=False)
    assert out.returncode == 2 and "--workers-per-gpu" in out.stderr
    assert not list(tmp_path.iterdir())


# === Speed settings ===

DIGITS = data.load("digits", {})


@pytest.mark.parametrize("policy,compute", [("float32", "float32"), ("mixed_bfloat16", "bfloat16"),
                                            ("mixed_float16", "float16")])
def test_precision_builds_under_the_policy_with_float32_outputs(policy, compute):
    hp = train.TrainHParams(precision=policy, checkpoint_every=0)
    result = train.fit(lambda: mlp.build(mlp.HParams(depth=1, width=16), DIGITS), DIGITS, hp, epochs=1, seed=0,
                       monitor="val_accuracy")
    model = result.model
    hidden = mlp.hidden_layers(model, 1)[0].dense
    assert hidden.dtype_policy.name == policy and hidden.compute_dtype == compute
    assert str(model.outputs[0].dtype) == "float32" and model.get_layer("head").compute_dtype == "float32"
    assert result.settings["precision"] == policy
    import keras

    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored after building
    if policy == "mixed_float16":
        assert type(model.optimizer).__name__ == "LossScaleOptimizer"


def test_every_builder_has_float32_outputs_under_mixed_precision():
    images = data.load("digits", {"shape": "image"})
    for name in models.names():
        entry = models.get(name)
        ds = images if entry.accepts((8, 8, 1)) is None else DIGITS
        if entry.accepts(tuple(ds.input_shape)) is not None:
            continue
        with runtime.precision("mixed_bfloat16"):
            model = runtime.float32_outputs(entry.build(entry.hparams(), ds))
        outputs = getattr(model, "outputs", None) or [o for part in model.layers for o in part.outputs]  # GAN: both nets
        assert outputs and all(str(o.dtype) == "float32" for o in outputs), name


def test_jit_compile_and_determinism_are_applied_and_reported_truthfully():
    build = lambda: mlp.build(mlp.HParams(depth=1, width=16), DIGITS)  # noqa: E731
    on = train.fit(build, DIGITS, train.TrainHParams(checkpoint_every=0), epochs=1, seed=0, monitor="val_accuracy")
    assert on.settings["determinism"] == "on" and on.model.jit_compile is False  # Keras: no XLA under determinism
    off = train.fit(build, DIGITS, train.TrainHParams(jit_compile=True, deterministic=False, checkpoint_every=0),
                    epochs=1, seed=0, monitor="val_accuracy")
    assert off.settings == {"precision": "float32", "determinism": "off", "jit_compile": "true"}
    assert off.model.jit_compile is True
    runtime.set_determinism(True)


@pytest.mark.e2e
def test_the_run_tags_say_what_was_in_force(stores, tmp_path):
    storage, uri = stores
    text = Path(TINY).read_text().replace("[fixed]", '[fixed]\nprecision = "mixed_bfloat16"\ndeterministic = false\n'
                                                     "jit_compile = true")
    dlbench("run", str(write_spec(tmp_path, text)), "--quick", "--trials", "1", "--arms", "tanh", "--storage",
            storage, "--tracking-uri", uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tiny-quick")
    runs = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags["dlbench.role"] in ("trial", "repeat")]
    assert len(runs) == 3 and all(r.data.tags["dlbench.precision"] == "mixed_bfloat16" for r in runs)
    assert all(r.data.tags["dlbench.determinism"] == "off" and r.data.tags["dlbench.jit_compile"] == "true"
               for r in runs)
    assert all(r.data.params["precision"] == "mixed_bfloat16" for r in runs)
    assert any(k.startswith("system/cpu") for k in runs[0].data.metrics)  # system metrics on every run
    assert any(k.startswith("system/system_memory") for k in runs[0].data.metrics)


@pytest.mark.parametrize("line,field,message", [
    ('precision = "float8"', "fixed.precision", "one of 'float32', 'mixed_float16', 'mixed_bfloat16'"),
    ('jit_compile = "yes"', "fixed.jit_compile", "one of 'auto' or true or false"),
    ("jit_compile = true", "fixed.jit_compile", "cannot run with TensorFlow op determinism on"),
    ("checkpoint_every = -1", "fixed.checkpoint_every", "not allowed"),
])
def test_bad_speed_settings_are_input_errors_naming_the_field(tmp_path, line, field, message):
    path = write_spec(tmp_path, Path(TINY).read_text().replace("[fixed]", f"[fixed]\n{line}"))
    with pytest.raises(SpecError) as e:
        if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" and "determinism" in message:
            pytest.skip("the TensorFlow-only combination")
        spaces.load(path)
    assert e.value.field == field and message in e.value.message


def test_unknown_precision_on_the_command_line_exits_2_before_anything_is_created(tmp_path):
    path = write_spec(tmp_path, Path(TINY).read_text().replace("[fixed]", '[fixed]\nprecision = "half"'))
    out = dlbench("run", str(path), "--storage", str(tmp_path / "s"), "--tracking-uri",
                  f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}", check=False)
    assert out.returncode == 2 and "fixed.precision" in out.stderr and "mixed_bfloat16" in out.stderr
    assert not (tmp_path / "s").exists() and not (tmp_path / "m").exists()
