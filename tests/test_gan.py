"""The GAN: its losses by hand, a train step that updates what it should (by value), spectral normalisation, the
sample metrics on hand-made samples, the judge's cache, the spec checks, and the experiments end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dlbench import data, models, train
from dlbench.models import adversarial, gan, gan_metrics

REAL = np.array([2.0, -1.0, 0.5], dtype="float32")  # discriminator logits of real inputs
FAKE = np.array([-3.0, 0.0, 1.5], dtype="float32")  # ... and of generated ones


def _softplus(x):
    return np.log1p(np.exp(x.astype("float64")))


@pytest.mark.parametrize("kind", ["minimax", "non_saturating"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_losses_by_hand(kind, smoothing):
    from keras import ops

    sig = lambda x: 1 / (1 + np.exp(-x.astype("float64")))  # noqa: E731
    t = 1 - smoothing
    d = np.mean(-(t * np.log(sig(REAL)) + (1 - t) * np.log(1 - sig(REAL)))) + np.mean(-np.log(1 - sig(FAKE)))
    got = float(ops.convert_to_numpy(adversarial.discriminator_loss(REAL, FAKE, kind, smoothing)))
    assert got == pytest.approx(d, rel=1e-5)
    g = np.mean(np.log(1 - sig(FAKE))) if kind == "minimax" else np.mean(-np.log(sig(FAKE)))
    assert float(ops.convert_to_numpy(adversarial.generator_loss(FAKE, kind))) == pytest.approx(g, rel=1e-5)


def test_hinge_losses_by_hand():
    from keras import ops

    d = np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE))
    assert float(ops.convert_to_numpy(adversarial.discriminator_loss(REAL, FAKE, "hinge"))) == pytest.approx(d)
    assert float(ops.convert_to_numpy(adversarial.generator_loss(FAKE, "hinge"))) == pytest.approx(-FAKE.mean())


def test_the_minimax_generator_loss_saturates_where_the_non_saturating_one_does_not():
    import keras
    from keras import ops

    logits = keras.Variable(np.array([-8.0], dtype="float32"))  # the discriminator rejects the sample confidently
    import tensorflow as tf

    grads = {}
    for kind in ("minimax", "non_saturating"):
        with tf.GradientTape() as tape:
            loss = adversarial.generator_loss(logits.value, kind)
        grads[kind] = abs(float(ops.convert_to_numpy(tape.gradient(loss, logits.value))[0]))
    assert grads["minimax"] < 1e-3 < 0.99 < grads["non_saturating"]


def _tiny(shape=(2,), **kw):
    import keras

    info = data.load("ring8", {"n": 400}) if shape == (2,) else data.load("digits", {"shape": "image"})
    keras.utils.set_random_seed(0)
    model = gan.build(gan.HParams(latent_dim=4, width=16, filters=4, **kw), info)
    model.compile(keras.optimizers.Adam(1e-2))
    return model, info


def _values(variables):
    from keras import ops

    return [ops.convert_to_numpy(v).copy() for v in variables]


@pytest.mark.parametrize("frozen", ["generator", "discriminator"])
def test_a_train_step_updates_each_network_with_its_own_optimizer_and_nothing_else(frozen):
    """With one network's learning rate at zero, a step leaves exactly that network's weights as they were."""
    model, info = _tiny(d_steps=2)
    model.optimizer.build(model.trainable_variables)
    getattr(model.optimizer, frozen).learning_rate = 0.0
    g0, d0 = _values(model.generator.trainable_variables), _values(model.discriminator.trainable_variables)
    model.fit(info.train.x[:32], info.train.x[:32], batch_size=32, epochs=1, verbose=0)
    g1, d1 = _values(model.generator.trainable_variables), _values(model.discriminator.trainable_variables)
    moved = {"generator": any(not np.array_equal(a, b) for a, b in zip(g0, g1)),
             "discriminator": any(not np.array_equal(a, b) for a, b in zip(d0, d1))}
    assert moved == {"generator": frozen != "generator", "discriminator": frozen != "discriminator"}
    # d_steps = 2: two discriminator updates per generator update, each optimizer counting its own
    assert int(model.optimizer.discriminator.iterations) == 2 and int(model.optimizer.generator.iterations) == 1


def test_the_learning_rate_of_the_pair_sets_both_copies():
    model, _ = _tiny()
    model.optimizer.learning_rate = 0.125
    assert float(model.optimizer.generator.learning_rate) == float(model.optimizer.discriminator.learning_rate) == 0.125


def test_spectral_normalisation_brings_the_largest_singular_value_to_one():
    import keras
    from keras import ops

    from dlbench.models.layers import SpectralConv2D, SpectralDense, _spectral_normalized

    keras.utils.set_random_seed(0)
    for layer, x in ((SpectralDense(12), np.ones((2, 20), "float32")),
                     (SpectralConv2D(6, 3), np.ones((2, 8, 8, 3), "float32"))):
        layer(x)
        before = ops.convert_to_numpy(layer.kernel).copy()
        for _ in range(30):  # power iterations, one per training call
            layer(x, training=True)
        kernel = ops.convert_to_numpy(_spectral_normalized(layer, layer.kernel, False))
        assert np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0] == pytest.approx(1.0, abs=0.02)
        np.testing.assert_array_equal(ops.convert_to_numpy(layer.kernel), before)  # the variable is not overwritten
        out = ops.convert_to_numpy(layer(x))  # what the layer computes uses the normalised kernel
        plain = ops.convert_to_numpy(ops.conv(x, kernel, padding="valid") if kernel.ndim == 4 else x @ kernel)
        np.testing.assert_allclose(out, plain + ops.convert_to_numpy(layer.bias), rtol=1e-4, atol=1e-5)


def test_modes_and_quality_counted_on_hand_made_samples():
    modes = data.load("ring8").modes
    std = 0.02
    near = np.repeat(modes[:3], 800, axis=0) + 0.01  # 2,400 samples within 3 std of 3 modes
    few = np.repeat(modes[3:4], 19, axis=0)  # 19 high-quality samples at a fourth: below 20 of 2,500
    far = np.zeros((81, 2), "float32")  # the ring's centre: no mode near
    got = gan_metrics.mode_metrics(np.concatenate([near, few, far]), modes, std)
    assert got == {"modes": 3.0, "high_quality": pytest.approx(2419 / 2500)}
    assert gan_metrics.mode_metrics(np.concatenate([near, few, modes[3:4], far[1:]]), modes, std)["modes"] == 4.0
    assert gan_metrics.mode_metrics(modes + 0.07, modes, std)["high_quality"] == 0.0  # 0.07 > 3 x 0.02 away


def test_frechet_distance_and_score_on_known_cases():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert gan_metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert gan_metrics.frechet_distance(a, a + [2.0, 0.0, 0.0]) == pytest.approx(4.0, rel=1e-6)
    assert gan_metrics.frechet_distance(a, 2 * a) == pytest.approx(3.0, rel=0.05)  # (sqrt(4) - 1)^2 x 3 dims
    assert gan_metrics.classifier_score(np.eye(5)[np.arange(100) % 5]) == pytest.approx(5.0, rel=1e-6)
    assert gan_metrics.classifier_score(np.tile([[1.0, 0, 0]], (10, 1))) == pytest.approx(1.0)


def test_the_judge_is_trained_once_then_loaded_from_its_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(gan_metrics.CACHE_ENV, str(tmp_path))
    info = data.load("digits")
    gan_metrics._JUDGES.clear()
    first = gan_metrics.judge(info)
    files = sorted(p.name for p in (tmp_path / "judges").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npz")
    assert first.accuracy > 0.9 and json.loads((tmp_path / "judges" / files[0]).read_text())["test_accuracy"] == first.accuracy
    gan_metrics._JUDGES.clear()
    again = gan_metrics.judge(info)
    assert again.accuracy == first.accuracy
    np.testing.assert_allclose(again(info.test.x[:5])[0], first(info.test.x[:5])[0], rtol=1e-5)


def test_training_on_ring8_logs_losses_and_sample_quality_per_epoch():
    info = data.load("ring8", {"n": 2000})
    hp = gan.HParams(latent_dim=8, width=64)
    entry = models.get("gan")
    result = train.fit(lambda: entry.build(hp, info), info, train.TrainHParams(learning_rate=2e-3, batch_size=64),
                       epochs=3, seed=0, monitor="val_high_quality", task="adversarial", loss=entry.loss(hp),
                       evaluate=entry.evaluator(info), evaluate_test=True)
    for key in ("loss", "d_loss", "g_loss", "d_real", "d_fake", "val_d_loss", "val_modes", "val_high_quality"):
        assert len(result.history[key]) == 3 and all(math.isfinite(v) for v in result.history[key]), key
    assert all(0 <= v <= 8 for v in result.history["val_modes"])
    assert {"test_modes", "test_high_quality", "test_d_loss"} <= set(result.test)
    assert result.params_count > 0 and result.flops_per_example > 0


@pytest.mark.parametrize("change, field, words", [
    ({"metric": "val_modes"}, "metric", "counts samples near the modes of a known mixture"),
    ({"dataset": {"name": "ring8"}, "metric": "val_fid"}, "metric", "is a mixture of known modes"),
    ({"fixed": {"gan_loss": "hinge", "label_smoothing": 0.1}}, "arms.a", "the hinge loss has none"),
    ({"fixed": {"architecture": "dcgan"}, "dataset": {"name": "digits"}}, "arms.a", "needs images"),
    ({"fixed": {"precision": "mixed_float16"}}, "fixed.precision", "not mixed_float16"),
])
def test_spec_refusals_name_the_field(change, field, words):
    from dlbench import spaces
    from dlbench.spec import SpecError

    raw = {"name": "g", "dataset": {"name": "digits", "shape": "image"}, "model": "gan", "metric": "val_fid",
           "budget": {"trials": 1, "epochs": 1}, "seeds": 2, "baseline": "a", "arms": {"a": {"latent_dim": 4}, "b": {"latent_dim": 8}},
           **change}
    with pytest.raises(SpecError) as err:
        spaces.load(raw)
    assert err.value.field == field and words in str(err.value)


def test_pictures_are_an_image_grid_for_images_and_points_for_2d_data():
    model, info = _tiny()
    pics = gan.pictures(model, info, gan.HParams(latent_dim=4))
    assert pics["samples"] is None and pics["points"].shape == (2500, 2) and pics["reference"] is info.test.x
    model, info = _tiny((8, 8, 1), architecture="dcgan")
    assert gan.pictures(model, info, gan.HParams(latent_dim=4))["samples"].shape == (64, 8, 8)


@pytest.mark.e2e
@pytest.mark.parametrize("name, arms, metric", [("gan_losses", ["minimax", "non_saturating"], "test_modes"),
                                                ("dcgan_digits", ["batch_norm", "no_batch_norm"], "test_fid")])
def test_the_experiments_run_quick(stores, name, arms, metric):
    import mlflow

    from conftest import quick_run

    _, runs = quick_run(name, *stores)
    assert sorted(runs["tags.dlbench.arm"]) == arms
    assert runs[f"metrics.{metric}"].notna().all()
    client = mlflow.MlflowClient()
    for run_id in runs["run_id"]:
        assert "pictures/samples.png" in {f.path for f in client.list_artifacts(run_id, "pictures")}


@pytest.mark.parametrize("name, k, std", [("ring8", 8, 0.02), ("grid25", 25, 0.05)])
def test_the_mixtures_label_each_point_with_the_mode_it_was_drawn_from(name, k, std):
    info = data.load(name)
    assert info.modes.shape == (k, 2) and info.mode_std == std and info.num_classes == k
    for split in (info.train, info.val, info.test):
        nearest = np.linalg.norm(split.x[:, None] - info.modes[None], axis=-1).argmin(axis=1)
        assert (nearest == split.y).all()  # the modes lie far apart beside their spread
    assert len(info.train) == 6000 and len(info.val) == len(info.test) == 2000
    # 2,000 real points cover every mode
    assert gan_metrics.mode_metrics(info.test.x, info.modes, std)["modes"] == k


def test_a_saved_gan_loads_back_with_its_weights(tmp_path):
    import keras
    from keras import ops

    model, info = _tiny((8, 8, 1), architecture="dcgan", spectral_norm=True, g_batch_norm=True)
    model.fit(info.train.x[:32], info.train.x[:32], batch_size=16, epochs=1, verbose=0)
    train.save_model(model, tmp_path / "gan.keras")
    loaded = keras.saving.load_model(tmp_path / "gan.keras", compile=False)
    z = np.random.default_rng(0).standard_normal((4, 4)).astype("float32")
    np.testing.assert_allclose(loaded.generator.predict(z, verbose=0), model.generator.predict(z, verbose=0), atol=1e-6)
    u = [ops.convert_to_numpy(m.get_layer("d_0").sn_u) for m in (model.discriminator, loaded.discriminator)]
    np.testing.assert_array_equal(*u)  # the power iteration's state too
