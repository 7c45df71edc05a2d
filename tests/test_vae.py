"""The variational autoencoder: its objective by hand, its builds, its spec checks, and a short training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlbench import data, models, train
from dlbench.models import vae

# A tiny batch by hand: 2 examples of 3 inputs in [0, 1], 2 latent dimensions.
X = np.array([[0.0, 1.0, 0.5], [1.0, 0.25, 0.0]], dtype="float32")
OUT = np.array([[-1.0, 2.0, 0.0], [3.0, -0.5, 0.7]], dtype="float32")  # logits (Bernoulli) or means (Gaussian)
MEAN = np.array([[0.5, -1.0], [0.0, 2.0]], dtype="float32")
LOG_VAR = np.array([[0.0, -1.0], [0.5, 0.2]], dtype="float32")
PACKED = np.concatenate([OUT, MEAN, LOG_VAR], axis=1)


def _by_hand(likelihood: str) -> tuple[np.ndarray, np.ndarray]:
    if likelihood == "bernoulli":
        p = 1.0 / (1.0 + np.exp(-OUT.astype("float64")))
        rec = -(X * np.log(p) + (1 - X) * np.log(1 - p)).sum(axis=1)
    else:
        rec = (0.5 * (X - OUT) ** 2).sum(axis=1) + 1.5 * math.log(2 * math.pi)
    var = np.exp(LOG_VAR.astype("float64"))
    kl = 0.5 * (MEAN ** 2 + var - 1.0 - LOG_VAR).sum(axis=1)
    return rec, kl


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_the_elbo_is_reconstruction_plus_kl_computed_by_hand(likelihood):
    from keras import ops

    rec, kl = _by_hand(likelihood)
    got = {name: ops.convert_to_numpy(fn(X, PACKED)) for name, fn in vae.metric_functions(likelihood).items()}
    np.testing.assert_allclose(got["reconstruction"], rec, rtol=1e-5)
    np.testing.assert_allclose(got["kl"], kl, rtol=1e-5)
    np.testing.assert_allclose(got["elbo"], -(rec + kl), rtol=1e-5)
    for beta in (1.0, 4.0):  # the training loss weighs the KL by beta; the elbo metric never does
        loss = vae.loss(vae.HParams(likelihood=likelihood, beta=beta))
        np.testing.assert_allclose(ops.convert_to_numpy(loss(X, PACKED)), rec + beta * kl, rtol=1e-5)


def test_the_bernoulli_term_stays_finite_for_large_logits():
    from keras import ops

    far = np.concatenate([np.array([[-200.0, 200.0, 50.0]], dtype="float32"), MEAN[:1], LOG_VAR[:1]], axis=1)
    rec = ops.convert_to_numpy(vae.reconstruction_nll(np.array([[0.0, 1.0, 0.0]], dtype="float32"), far))
    assert np.isfinite(rec).all() and rec[0] == pytest.approx(50.0, rel=1e-4)


@pytest.mark.parametrize("options,hp", [({}, vae.HParams(latent_dim=3)),
                                        ({"shape": "image"}, vae.HParams(encoder="conv", latent_dim=3, blocks=2))])
def test_builds_pack_the_decoder_output_and_the_latent_statistics(options, hp):
    info = data.load("digits", options)
    model = vae.build(hp, info)
    assert model.output_shape == (None, 64 + 2 * 3)
    assert model.get_layer("decoder").output_shape == (None, 64)
    assert model.get_layer("encoder").output_shape == [(None, 3), (None, 3)]
    recon = vae.reconstruct(model, info.val.x[:4], hp.likelihood)
    assert recon.shape == info.val.x[:4].shape and (recon >= 0).all() and (recon <= 1).all()


def test_pictures_are_images_where_the_inputs_are_and_latents_when_two_dimensional(tmp_path):
    from dlbench import plots

    info = data.load("digits")  # flat vectors of 64 = 8 x 8 pixels
    pics = vae.pictures(vae.build(vae.HParams(latent_dim=2, width=16), info), info, vae.HParams(latent_dim=2),
                        count=16)
    assert pics["samples"].shape == (16, 8, 8) and pics["inputs"].shape == pics["reconstructions"].shape == (16, 8, 8)
    np.testing.assert_array_equal(pics["inputs"], info.test.x[:16].reshape(-1, 8, 8))
    assert pics["latents"].shape == (len(info.test.x), 2) and len(pics["labels"]) == len(info.test.x)
    assert plots.image_grid(pics["samples"], tmp_path / "s.png", "samples").stat().st_size > 1000
    assert plots.latent_scatter(pics["latents"], pics["labels"], tmp_path / "l.png").stat().st_size > 1000
    wide = vae.pictures(vae.build(vae.HParams(latent_dim=3, width=16), info), info, vae.HParams(latent_dim=3))
    assert wide["latents"] is None and wide["samples"].shape == (64, 8, 8)


def test_a_trained_vae_saves_and_loads_with_its_weights(tmp_path):
    import keras

    info = data.load("digits")
    model = vae.build(vae.HParams(latent_dim=2, width=16), info)
    train.save_model(model, tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras", compile=False)
    assert loaded.get_layer("z").__class__.__name__ == "GaussianSample"
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_registry_and_the_task_metrics():
    entry = models.get("vae")
    assert entry.task == "generative" and entry.task_for("classification") == "generative"
    assert data.TASK_METRICS["generative"] == ("loss", "elbo", "reconstruction", "kl")
    assert train.TASKS["generative"].metrics == data.TASK_METRICS["generative"][1:]
    assert [train.direction(m) for m in ("val_elbo", "val_reconstruction", "test_kl")] == \
        ["maximize", "minimize", "minimize"]
    assert "needs images" in entry.fits(vae.HParams(encoder="conv"), (64,))
    assert "multiple of 8" in entry.fits(vae.HParams(encoder="conv", blocks=3), (28, 28, 1))
    assert entry.fits(vae.HParams(encoder="conv", blocks=2), (28, 28, 1)) is None


def test_a_conv_encoder_on_flat_inputs_is_refused_with_the_spec(tmp_path):
    from dlbench import spaces
    from dlbench.spec import SpecError

    path = tmp_path / "bad.toml"
    path.write_text('name = "bad-vae"\nmodel = "vae"\nmetric = "val_elbo"\nbaseline = "a"\ndataset = "digits"\n'
                    'budget = { trials = 2, epochs = 1 }\n[search]\nencoder = { choices = ["dense", "conv"] }\n[arms.a]\nlatent_dim = 2\n')
    with pytest.raises(SpecError) as err:
        spaces.load(path)
    assert "arms.a" in str(err.value) and "needs images" in str(err.value) and "bad.toml" in str(err.value)
    path.write_text(path.read_text().replace('metric = "val_elbo"', 'metric = "val_accuracy"')
                    .replace('["dense", "conv"]', '["dense"]'))
    with pytest.raises(SpecError, match="val_elbo"):  # the allowed metrics are the generative task's
        spaces.load(path)


def test_training_raises_the_bound_and_logs_its_parts():
    info = data.load("digits")
    hp = vae.HParams(latent_dim=2, width=64)
    result = train.fit(lambda: vae.build(hp, info), info, train.TrainHParams(learning_rate=3e-3, batch_size=64),
                       epochs=4, seed=0, monitor="val_elbo", task="generative", loss=vae.loss(hp),
                       evaluate_test=True)
    h = result.history
    assert h["val_elbo"][-1] > h["val_elbo"][0] + 2.0
    for e in range(4):  # the logged bound is minus the sum of its logged parts
        assert h["elbo"][e] == pytest.approx(-(h["reconstruction"][e] + h["kl"][e]), rel=1e-3)
    assert {"test_elbo", "test_reconstruction", "test_kl"} <= set(result.test)
    assert result.test["test_elbo"] < 0 < result.test["test_kl"]


@pytest.mark.e2e
def test_the_experiment_runs_quick(stores):
    import mlflow

    from conftest import quick_run

    _, runs = quick_run("vae_latent", *stores)
    assert sorted(runs["tags.dlbench.arm"]) == ["z10", "z2", "z20", "z5"]
    assert (runs["metrics.test_elbo"] < 0).all() and (runs["metrics.test_kl"] > 0).all()
    client = mlflow.MlflowClient()
    for arm, run_id in zip(runs["tags.dlbench.arm"], runs["run_id"]):
        pictures = {f.path for f in client.list_artifacts(run_id, "pictures")}
        expected = {"pictures/samples.png", "pictures/inputs.png", "pictures/reconstructions.png"}
        assert pictures == (expected | {"pictures/latent_space.png"} if arm == "z2" else expected)


@pytest.mark.e2e
def test_the_beta_experiment_runs_quick(stores):
    from conftest import quick_run

    _, runs = quick_run("vae_beta", *stores)
    assert sorted(runs["tags.dlbench.arm"]) == ["beta_1", "beta_4"]
    assert sorted(runs["params.beta"].astype(float)) == [1.0, 4.0]
    assert (runs["metrics.test_kl"] > 0).all() and (runs["metrics.test_elbo"] < 0).all()
