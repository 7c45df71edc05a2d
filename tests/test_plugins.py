"""Plugins: models and datasets of your own, by decorator, by `module:function` in a spec, or by entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import dlbench
from conftest import ROOT, dlbench as dlbench_cli
from dlbench import data, models, plugins
from dlbench.spec import SpecError

@pytest.fixture(autouse=True)
def _registries_restored():
    """Each test's plugins leave the registries as they were, so no other test sees them in `known models`."""
    saved = dict(models._MODELS), dict(data._DATASETS), dict(plugins._PLUGINS)
    yield
    for registry, old in zip((models._MODELS, data._DATASETS, plugins._PLUGINS), saved):
        registry.clear()
        registry.update(old)


SPEC = """\
name = "plug"
dataset = {{ name = "spirals", n = 300 }}
model = "{model}"
metric = "val_accuracy"
baseline = "small"
seeds = 2
budget = {{ trials = 2, epochs = 2 }}
pruner = "none"

[search]
learning_rate = {{ low = 1e-3, high = 1e-1, log = true }}

[arms.small]
width = 4

[arms.large]
width = 32
"""

MODEL = '''\
import keras


def build(info, width: int = 16, depth: int = 1):
    """Tiny plugin MLP (tests)."""
    inputs = keras.Input(shape=info.input_shape)
    x = keras.layers.Flatten()(inputs)
    for _ in range(depth):
        x = keras.layers.Dense(width, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(info.num_classes, activation="softmax")(x))


def not_a_model(info, width: int = 16):
    return "a string"


NOT_CALLABLE = 3
'''


def _project(tmp_path: Path, model: str = "tinyplug:build") -> Path:
    (tmp_path / "tinyplug.py").write_text(MODEL)
    spec = tmp_path / "plug.toml"
    spec.write_text(SPEC.format(model=model))
    return spec


def test_a_spec_naming_module_function_checks_its_hyperparameters_and_hashes_its_source(tmp_path):
    spec = _project(tmp_path)
    exp = dlbench.load_spec(spec)
    entry = models.get("tinyplug:build")
    assert entry.source.startswith("tinyplug:build") and entry.hparams.__dataclass_fields__["width"].default == 16
    assert dict(exp.sources) == {"model:tinyplug:build": entry.digest}
    with pytest.raises(SpecError) as e:  # checked like a built-in's: the type comes from the hint
        dlbench.load_spec(spec, **{"arms.small.width": "wide"})
    assert e.value.field == "arms.small.width" and "int" in e.value.message
    with pytest.raises(SpecError) as e:
        dlbench.load_spec(spec, **{"fixed.heigth": 3})
    assert e.value.field == "fixed.heigth" and "depth" in e.value.message and "learning_rate" in e.value.message

    # Editing the plugin changes the spec hash: an old study is never resumed silently.
    before = exp.spec_hash
    (tmp_path / "tinyplug.py").write_text(MODEL.replace("relu", "tanh"))
    assert plugins.attach(exp).spec_hash != before


@pytest.mark.parametrize("ref, says", [
    ("no_such_module:build", "ModuleNotFoundError"),
    ("tinyplug:missing", "has no 'missing'"),
    ("tinyplug:NOT_CALLABLE", "not a function"),
    ("tinyplug:not_a_model", "returned str, not a keras.Model"),
])
def test_a_bad_reference_is_a_spec_error_naming_the_field(tmp_path, ref, says):
    spec = _project(tmp_path, model=ref)
    with pytest.raises(SpecError) as e:
        dlbench.load_spec(spec)
    assert e.value.field == "model" and says in e.value.message and ref in e.value.message


@pytest.mark.e2e
def test_the_command_line_refuses_a_bad_reference_with_exit_2_and_creates_nothing(tmp_path):
    spec = _project(tmp_path, model="tinyplug:missing")
    out = dlbench_cli("run", str(spec), "--storage", str(tmp_path / "s"), "--tracking-uri",
                      f"sqlite:///{tmp_path / 'm' / 'db'}", check=False, cwd=tmp_path)
    assert out.returncode == 2
    assert "field `model`" in out.stderr and "tinyplug:missing" in out.stderr
    assert not (tmp_path / "s").exists() and not (tmp_path / "m").exists()


def test_registration_refuses_collisions_and_hyperparameters_without_defaults():
    with pytest.raises(KeyError, match="'mlp' was already registered by the built-in model"):
        dlbench.register_model("mlp")(lambda info, width=3: None)
    with pytest.raises(ValueError, match="hyperparameter 'learning_rate' is also the trainer's switch"):
        dlbench.register_model("lr_clash")(lambda info, learning_rate=0.1: None)
    with pytest.raises(TypeError, match="parameter 'width' .* has no default"):
        dlbench.register_model("no_default")(lambda info, width: None)
    with pytest.raises(KeyError, match="'digits' was already registered by the built-in dataset"):
        dlbench.register_dataset("digits")(lambda n=3: None)
    assert "lr_clash" not in models.names() and "no_default" not in models.names()


def test_a_dataset_plugin_returns_arrays_and_its_options_are_checked(tmp_path):
    import numpy as np

    @dlbench.register_dataset("test_blobs", description="two Gaussian blobs (tests)")
    def blobs(n: int = 60, gap: float = 3.0):
        rng = np.random.default_rng(0)
        y = np.arange(n) % 2
        x = rng.normal(size=(n, 2)) + gap * y[:, None]
        return (x[: n // 2], y[: n // 2]), (x[n // 2: 3 * n // 4], y[n // 2: 3 * n // 4]), (x[3 * n // 4:], y[3 * n // 4:])

    info = data.load("test_blobs", {"n": 80})
    assert info.input_shape == (2,) and info.num_classes == 2 and len(info.train) == 40
    spec = _project(tmp_path)
    exp = dlbench.load_spec(spec, sets=['dataset={ name = "test_blobs", n = 80 }'])
    assert exp.dataset.name == "test_blobs" and "dataset:test_blobs" in dict(exp.sources)
    with pytest.raises(SpecError) as e:
        dlbench.load_spec(spec, sets=['dataset={ name = "test_blobs", n = "many" }'])
    assert e.value.field == "dataset.n"


@pytest.mark.e2e
def test_a_module_function_model_trains_with_two_spawned_workers(tmp_path):
    spec = _project(tmp_path)
    storage, uri = str(tmp_path / "studies"), f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    out = dlbench_cli("run", str(spec), "--workers", "2", "--storage", storage, "--tracking-uri", uri,
                      "--no-progress", cwd=ROOT)
    assert "plug: comparison of 2 arms" in out.stdout and "workers failed" not in out.stderr
    listed = dlbench_cli("list", "models", cwd=ROOT).stdout
    assert "tinyplug" not in listed  # a spec's reference is registered by the run that names it, not globally


@pytest.mark.e2e
def test_a_model_registered_in_an_interactive_session_reaches_spawned_workers(tmp_path):
    """As in a notebook: the model is defined in __main__, which spawned workers cannot import; it travels by
    value."""
    spec = tmp_path / "plug.toml"
    spec.write_text(SPEC.format(model="session_mlp"))
    code = textwrap.dedent(f"""
        import keras, dlbench

        @dlbench.register_model("session_mlp")
        def build(info, width: int = 16):
            inputs = keras.Input(shape=info.input_shape)
            x = keras.layers.Dense(width, activation="relu")(inputs)
            return keras.Model(inputs, keras.layers.Dense(info.num_classes, activation="softmax")(x))

        report = dlbench.run({str(spec)!r}, workers=2, progress=False, storage={str(tmp_path / 's')!r},
                             tracking_uri={f"sqlite:///{tmp_path / 'm' / 'db'}"!r})
        frame = report.to_frame()
        print("ARMS", sorted(frame.index), "N", frame["n"].tolist())
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ARMS ['large', 'small'] N [2, 2]" in out.stdout


@pytest.mark.e2e
def test_an_installed_package_registers_through_entry_points(tmp_path):
    pkg = tmp_path / "src"
    (pkg / "dlbench_tinyplug").mkdir(parents=True)
    (pkg / "dlbench_tinyplug" / "__init__.py").write_text(MODEL)
    (pkg / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "dlbench-tinyplug"
        version = "0.1"
        [project.entry-points."dlbench.models"]
        tiny_entry = "dlbench_tinyplug:build"
    """))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(pkg)], check=True, capture_output=True, timeout=300)
    env_code = ("import sys; sys.path.insert(0, %r); from dlbench import cli; sys.exit(cli.main(['list', 'models']))"
                % str(target))
    out = subprocess.run([sys.executable, "-c", env_code], cwd=ROOT, capture_output=True, text=True, check=True)
    line = next(ln for ln in out.stdout.splitlines() if "tiny_entry" in ln)
    assert "Tiny plugin MLP (tests)" in line and "[plugin: dlbench_tinyplug:build" in line
    spec = tmp_path / "entry.toml"
    spec.write_text(SPEC.format(model="tiny_entry"))
    check = ("import sys; sys.path.insert(0, %r); import dlbench; e = dlbench.load_spec(%r); "
             "print(dict(e.sources))" % (str(target), str(spec)))
    out = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "model:tiny_entry" in out.stdout


def test_a_notebook_cell_run_again_after_an_edit_replaces_its_model():
    namespace: dict = {}
    cell = ("import dlbench\n@dlbench.register_model('cell_model')\ndef build(info, width: int = {w}):\n"
            "    return None\n")
    exec(compile(cell.format(w=8), "<cell>", "exec"), namespace)
    first = models.get("cell_model").digest
    exec(compile(cell.format(w=8), "<cell>", "exec"), namespace)  # run again as is: nothing changes
    assert models.get("cell_model").digest == first
    exec(compile(cell.format(w=16), "<cell>", "exec"), namespace)  # edited and run again: the new code counts
    entry = models.get("cell_model")
    assert entry.digest != first and entry.hparams.__dataclass_fields__["width"].default == 16
