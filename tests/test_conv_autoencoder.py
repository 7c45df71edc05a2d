"""The convolutional autoencoder: shapes and parameters by hand, the two decoders' upsampling by value (the
checkerboard overlap of a stride-2 transposed convolution, the even weighting of resize-convolution), refusals."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench import data, models
from dlbench.models import conv_autoencoder as CA


def _info(shape):
    class Info:
        input_shape = shape
        num_classes = 10

    return Info()


@pytest.mark.parametrize("upsampling", ["transposed", "resize_conv"])
def test_shapes_parameters_and_layer_names_by_hand(upsampling):
    hp = CA.HParams(blocks=2, filters=4, code=2, upsampling=upsampling)
    m = CA.build(hp, _info((8, 8, 1)))
    assert m.output_shape == (None, 8, 8, 1)
    assert m.get_layer("code").output.shape[1:] == (2, 2, 2)
    # encoder 3*3*1*4+4 + 3*3*4*8+8, code 8*2+2, decoder 3*3*2*8+8 + 3*3*8*4+4, reconstruction 3*3*4*1+1:
    # the same count for both decoders, so the two arms of an ablation differ in the upsampling alone.
    assert m.count_params() == 40 + 296 + 18 + 152 + 292 + 37
    kinds = {l.name: type(l).__name__ for l in m.layers}
    if upsampling == "transposed":
        assert kinds["decoder_1"] == kinds["decoder_0"] == "Conv2DTranspose" and "decoder_0_resize" not in kinds
    else:
        assert kinds["decoder_1_resize"] == "UpSampling2D" and kinds["decoder_0"] == "Conv2D"
    out = np.asarray(m(np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype("float32")))
    assert out.shape == (3, 8, 8, 1) and out.min() > 0.0 and out.max() < 1.0  # sigmoid, for inputs in [0, 1]


def test_sizes_that_do_not_halve_evenly_are_cropped_back():
    # 28 -> 14 -> 7 -> 4, decoded to 32: two pixels are cut from each side.
    m = CA.build(CA.HParams(blocks=3, filters=2, code=2), _info((28, 28, 1)))
    assert m.output_shape == (None, 28, 28, 1)
    assert m.get_layer("crop").cropping == ((2, 2), (2, 2))
    assert "crop" not in [l.name for l in CA.build(CA.HParams(blocks=2), _info((28, 28, 1))).layers]


def _ones(layer, channels):
    """Give a decoder layer all-ones kernels and zero biases."""
    layer.set_weights([np.ones_like(layer.get_weights()[0]), np.zeros(channels, dtype="float32")])


def test_a_stride_2_transposed_convolution_overlaps_unevenly_and_resize_convolution_does_not():
    # Odena et al. 2016: a 3x3 kernel at stride 2 lands on alternate output pixels 1 and 2 times per axis, so a
    # constant input comes out as a checkerboard; upsampling then convolving weights every pixel alike.
    code = np.ones((1, 4, 4, 2), dtype="float32")  # a constant code, 2 channels
    for upsampling in ("transposed", "resize_conv"):
        m = CA.build(CA.HParams(blocks=1, filters=1, code=2, upsampling=upsampling, activation="linear"),
                     _info((8, 8, 1)))
        decoder = m.get_layer("decoder_0")
        _ones(decoder, 1)
        x = code
        if upsampling == "resize_conv":
            x = m.get_layer("decoder_0_resize")(x)
        y = np.asarray(decoder(x))[0, 1:-1, 1:-1, 0]  # the interior: no zero padding reaches it
        if upsampling == "transposed":
            assert sorted(np.unique(y)) == [2.0, 4.0, 8.0]  # 1 or 2 taps per axis, times 2 channels
            assert y[0, 0] != y[0, 1] and y[0, 0] != y[1, 0]
        else:
            np.testing.assert_allclose(y, 18.0)  # 3 x 3 taps x 2 channels everywhere


def test_it_takes_images_only_and_refuses_settings_that_do_not_go_together():
    entry = models.get("conv_autoencoder")
    assert entry.task == "reconstruction" and entry.loss(CA.HParams(loss="binary_crossentropy")) == "binary_crossentropy"
    assert "shape = \"image\"" in entry.accepts((64,))
    assert entry.accepts((8, 8, 1)) is None
    with pytest.raises(ValueError, match="needs output_activation = \"sigmoid\""):
        CA.HParams(loss="binary_crossentropy", output_activation="linear")
    with pytest.raises(ValueError, match="corrupts nothing"):
        CA.HParams(noise="masking", noise_level=0.0)


def test_it_learns_to_reconstruct_digit_images():
    import keras

    images = data.load("digits", {"shape": "image"})
    keras.utils.set_random_seed(0)
    m = CA.build(CA.HParams(blocks=2, filters=8, code=4), images)
    m.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    before = m.evaluate(images.val.x, images.val.x, verbose=0)
    m.fit(images.train.x, images.train.x, epochs=5, batch_size=64, verbose=0)
    after = m.evaluate(images.val.x, images.val.x, verbose=0)
    assert after < 0.5 * before


@pytest.mark.e2e
def test_the_experiment_runs_quick_with_equal_parameter_counts(stores):
    from conftest import quick_run

    _, runs = quick_run("conv_ae", *stores)
    assert sorted(runs["tags.dlbench.arm"]) == ["resize_conv", "transposed"]
    assert (runs["metrics.test_reconstruction_error"] > 0).all()
    assert runs["metrics.params_count"].nunique() == 1  # the arms differ in the upsampling alone
