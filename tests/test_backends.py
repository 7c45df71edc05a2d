"""Other Keras backends: the models are written with keras.layers/keras.ops only, so they build and train under
JAX too, and a whole `dlbench run` works there (KERAS_BACKEND=jax, in subprocesses: the backend is fixed when Keras
is first imported). Skipped locally without JAX; CI (CI set) installs it with the test extra and fails without it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import mlflow
import pytest

from conftest import ROOT

if importlib.util.find_spec("jax") is None:
    if os.environ.get("CI"):
        raise RuntimeError("JAX is not installed; the test extra installs it (pip install -e '.[test]')")
    pytest.skip("JAX is not installed (pip install jax)", allow_module_level=True)

pytestmark = pytest.mark.e2e  # end to end: trains, spawns workers or starts servers

JAX = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONUNBUFFERED": "1"}

GAN_STEP = """
from keras import ops
entry = models.get("gan")
for arch, shape in (("dense", (2,)), ("dcgan", (8, 8, 1))):
    info = types.SimpleNamespace(input_shape=shape, num_classes=10, task="classification", vocab=0, outputs=10)
    hp = entry.hparams(architecture=arch, spectral_norm=True, d_steps=2, g_batch_norm=True, d_batch_norm=True,
                       latent_dim=8)
    model = entry.build(hp, info)
    model.compile(keras.optimizers.Adam(1e-3))
    x = np.random.default_rng(0).random((32, *shape), dtype="float32")
    nets = {"generator": model.generator, "discriminator": model.discriminator}
    before = {k: [ops.convert_to_numpy(v).copy() for v in net.trainable_variables] for k, net in nets.items()}
    history = model.fit(x, x, epochs=2, batch_size=16, verbose=0, validation_data=(x, x))
    assert all(np.isfinite(history.history["loss"])) and "val_d_loss" in history.history, history.history
    for k, net in nets.items():  # every weight matrix of both networks moved
        assert all(not np.array_equal(ops.convert_to_numpy(v), b) for v, b in zip(net.trainable_variables, before[k])
                   if b.ndim > 1), k
    assert (int(model.optimizer.discriminator.iterations), int(model.optimizer.generator.iterations)) == (8, 4)
    print("trained gan-" + arch, shape)
"""

BUILD_AND_STEP = "GAN_STEP = " + repr(GAN_STEP) + """
import types, numpy as np, keras
from dlbench import models
assert keras.backend.backend() == "jax", keras.backend.backend()
shapes = [(8, 8, 1), (40, 1), (64,)]  # images (CIFAR-sized ones: test_models, under TensorFlow), 1-D, flat
rng = np.random.default_rng(0)
for name in models.names():
    entry = models.get(name)
    if "keras.applications" in entry.description:
        continue  # Keras's own code
    for shape in shapes:
        if entry.accepts(shape) is not None:
            continue
        hp = entry.hparams()
        info = types.SimpleNamespace(input_shape=shape, num_classes=10, task="classification", vocab=0, outputs=10)
        model = entry.build(hp, info)
        x = rng.random((16, *shape), dtype="float32")
        y = x if entry.task in models.UNSUPERVISED else rng.integers(0, 10, 16)
        loss = entry.loss(hp) or ("mse" if entry.task == "reconstruction" else "sparse_categorical_crossentropy")
        model.compile("adam", loss)
        history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        assert all(np.isfinite(history.history["loss"])), (name, shape)
        print("trained", name, shape)
# The convolutional VAE (its default is dense), trained on its negative ELBO.
entry = models.get("vae")
info = types.SimpleNamespace(input_shape=(8, 8, 1), num_classes=10, task="classification", vocab=0, outputs=10)
hp = entry.hparams(encoder="conv", blocks=2)
model = entry.build(hp, info)
model.compile("adam", entry.loss(hp))
x = rng.random((16, 8, 8, 1), dtype="float32")
assert all(np.isfinite(model.fit(x, x, epochs=1, batch_size=8, verbose=0).history["loss"]))
print("trained vae-conv (8, 8, 1)")
# The GAN's own train step (models/adversarial.py), on its convolutional path with spectral normalisation, batch
# norm in both networks and two discriminator steps: both networks learn, each optimizer counts its own steps.
exec(GAN_STEP)
# Token inputs (ids in [0, vocab)), which the sequence builders embed themselves; with the paths the defaults
# above leave out (two directions, batch norm, learned positions).
token_params = {"rnn": dict(bidirectional=True), "tcn": dict(batch_norm=True),
                "transformer": dict(positional="learned")}
for name, params in token_params.items():
    entry = models.get(name)
    info = types.SimpleNamespace(input_shape=(12,), num_classes=10, task="classification", vocab=7, outputs=10)
    model = entry.build(entry.hparams(**params), info)
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(rng.integers(0, 7, (16, 12)), rng.integers(0, 10, 16), epochs=1, batch_size=8, verbose=0)
    assert all(np.isfinite(history.history["loss"])), (name, "tokens")
    print("trained", name, "tokens")
"""


def test_every_dlbench_builder_trains_under_jax():
    proc = subprocess.run([sys.executable, "-c", BUILD_AND_STEP], cwd=ROOT, env=JAX, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    trained = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("trained")}
    assert {"mlp", "autoencoder", "logistic", "perceptron", "cnn", "vgg", "resnet", "mobilenet",
            "inception", "rnn", "tcn", "transformer", "conv_autoencoder", "vae", "vae-conv", "gan", "gan-dense",
            "gan-dcgan"} <= trained
    assert "trained cnn (40, 1)" in proc.stdout  # the 1-D path too
    assert "trained transformer (8, 8, 1)" in proc.stdout  # the Vision Transformer path
    for name in ("rnn", "tcn", "transformer"):
        assert f"trained {name} (40, 1)" in proc.stdout and f"trained {name} tokens" in proc.stdout


def test_the_gan_step_trains_under_pytorch():
    """The third backend of the GAN's train step (autograd); the other models' paths are Keras's own."""
    pytest.importorskip("torch")
    script = "import types, numpy as np, keras\nfrom dlbench import models\nassert keras.backend.backend() == 'torch'\n"
    proc = subprocess.run([sys.executable, "-c", script + GAN_STEP], cwd=ROOT, capture_output=True, text=True,
                          env={**JAX, "KERAS_BACKEND": "torch"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "trained gan-dense (2,)" in proc.stdout and "trained gan-dcgan (8, 8, 1)" in proc.stdout


def _run_jax(spec: str, tmp_path, tag: str) -> "pandas.DataFrame":  # noqa: F821
    uri = f"sqlite:///{tmp_path / tag / 'mlflow.db'}"
    proc = subprocess.run([sys.executable, "-m", "dlbench", "run", spec, "--quick", "--trials", "1", "--storage",
                           str(tmp_path / tag / "studies"), "--tracking-uri", uri, "--no-progress"], cwd=ROOT,
                          env=JAX, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(search_all_experiments=True, filter_string="tags.`dlbench.role` = 'repeat'")


def test_a_whole_run_under_jax_is_tagged_and_repeats_exactly(tmp_path):
    # Two models (per-arm `model`), tuning, seed repeats and the comparison, all under JAX; the same seed gives the
    # same test metrics in a second, independent run.
    spec = str(ROOT / "experiments" / "cnn_vs_mlp.toml")
    first, second = _run_jax(spec, tmp_path, "a"), _run_jax(spec, tmp_path, "b")
    assert set(first["tags.dlbench.keras_backend"]) == {"jax"}
    assert sorted(first["tags.dlbench.arm"]) == ["cnn", "cnn", "mlp", "mlp"]
    key = ["tags.dlbench.arm", "tags.dlbench.seed"]
    a = first.set_index(key)["metrics.test_accuracy"].sort_index()
    b = second.set_index(key)["metrics.test_accuracy"].sort_index()
    assert (a > 0.1).all(), a.to_dict()
    assert a.to_dict() == b.to_dict()
    assert (first["metrics.grad_norm/head"] > 0).all()  # gradients taken the JAX way, on both models
    assert first.filter(like="metrics.grad_norm/").notna().sum(axis=1).min() >= 3

