"""Model builders: shapes, parameter counts and the ablation switches."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench import data, models
from dlbench.models import mlp

DIGITS = data.load("digits")


def _layers(model, cls_name: str) -> list:
    return [l for l in model.layers if type(l).__name__ == cls_name]


def test_mlp_shape_and_parameter_count():
    model = mlp.build(mlp.HParams(depth=2, width=32), DIGITS)
    assert model.output_shape == (None, 10)
    # 64*32+32 + 32*32+32 + 32*10+10
    assert model.count_params() == 3466
    out = model(DIGITS.train.x[:5])
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, rtol=1e-5)


def test_mlp_layer_names_do_not_depend_on_dropout_rate():
    # Dropout is always present (rate 0.0 is the identity), so dropout-vs-none arms have the same graph.
    a = mlp.build(mlp.HParams(depth=3, width=8, dropout=0.0), DIGITS)
    b = mlp.build(mlp.HParams(depth=3, width=8, dropout=0.5), DIGITS)
    assert [l.name for l in a.layers] == [l.name for l in b.layers]
    assert [l.rate for l in _layers(b, "Dropout")] == [0.5, 0.5, 0.5]


def test_batch_norm_switch_adds_bn_and_drops_dense_bias():
    m = mlp.build(mlp.HParams(depth=2, width=8, batch_norm=True), DIGITS)
    assert len(_layers(m, "BatchNormalization")) == 2
    assert m.get_layer("dense_0").use_bias is False
    assert m.get_layer("head").use_bias is True


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "elu", "leaky_relu", "linear"])
def test_every_activation_builds_and_trains_one_step(act):
    m = mlp.build(mlp.HParams(depth=1, width=8, activation=act), DIGITS)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    hist = m.fit(DIGITS.train.x[:64], DIGITS.train.y[:64], epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    assert m.get_layer("act_0") is not None


def test_standard_uniform_init_is_bounded_by_one_over_sqrt_fan_in():
    m = mlp.build(mlp.HParams(depth=1, width=256, init="standard_uniform"), DIGITS)
    w = np.asarray(m.get_layer("dense_0").kernel)
    bound = 1 / np.sqrt(64)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.9 * bound  # a uniform over the whole interval, not a narrower one
    small = mlp.build(mlp.HParams(depth=1, width=256, init="small_normal"), DIGITS)
    assert np.std(np.asarray(small.get_layer("dense_0").kernel)) == pytest.approx(0.01, rel=0.1)


def test_registry_refuses_unknown_names_listing_known_ones():
    with pytest.raises(ValueError, match="known models: autoencoder, mlp"):
        models.get("lenet9")
    with pytest.raises(ValueError, match="known datasets: digits, spirals"):
        data.get("imagenet")


# === Autoencoder ===


def test_autoencoder_shape_parameter_count_and_layer_names():
    from dlbench.models import autoencoder

    m = autoencoder.build(autoencoder.HParams(depth=2, width=32, code=8), DIGITS)
    assert m.output_shape == (None, 64)
    # encoder 64*32+32 + 32*8+8, decoder 8*32+32 + 32*64+64
    assert m.count_params() == 2080 + 264 + 288 + 2112
    assert [l.name for l in m.layers if type(l).__name__ in ("Dense", "TiedDense")] == [
        "encoder_0", "code", "decoder_1", "reconstruction"]
    out = np.asarray(m(DIGITS.train.x[:5]))
    assert out.min() > 0.0 and out.max() < 1.0  # sigmoid output, for inputs in [0, 1]


def test_tied_autoencoder_decodes_with_the_transposed_encoder_kernels():
    from dlbench.models import autoencoder

    m = autoencoder.build(autoencoder.HParams(depth=2, width=32, code=8, tied=True), DIGITS)
    # Only the decoder biases are its own: 2080 + 264 (encoder) + 32 + 64.
    assert m.count_params() == 2440
    code, decoder = m.get_layer("code"), m.get_layer("decoder_1")
    h = np.random.default_rng(0).uniform(size=(3, 8)).astype("float32")
    expected = h @ np.asarray(code.kernel).T + np.asarray(decoder.bias)
    np.testing.assert_allclose(np.asarray(decoder(h)), expected, rtol=1e-5, atol=1e-6)


def test_autoencoder_refuses_settings_that_do_not_go_together():
    from dlbench.models import autoencoder

    with pytest.raises(ValueError, match="binary_crossentropy.*needs output_activation = \"sigmoid\""):
        autoencoder.HParams(loss="binary_crossentropy", output_activation="linear")
    with pytest.raises(ValueError, match="noise_level = 0 corrupts nothing"):
        autoencoder.HParams(noise="masking", noise_level=0.0)


def test_registry_entries_say_what_each_model_trains():
    assert models.get("mlp").task == "classification" and models.get("mlp").loss(mlp.HParams()) is None
    entry = models.get("autoencoder")
    assert entry.task == "reconstruction"
    assert entry.loss(entry.hparams(loss="binary_crossentropy")) == "binary_crossentropy"
