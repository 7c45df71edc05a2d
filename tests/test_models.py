"""Model builders: shapes, parameter counts, the ablation switches, losses and compute cost."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest

from dlbench import data, models, runtime
from dlbench.models import blocks, cost, mlp

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
    assert [l.rate for l in _layers(b, "Dropout")] == [0.0, 0.5, 0.5, 0.5]  # input_dropout, then each hidden layer


def test_batch_norm_switch_adds_bn_and_drops_dense_bias():
    m = mlp.build(mlp.HParams(depth=2, width=8, batch_norm=True), DIGITS)
    assert len(_layers(m, "BatchNormalization")) == 2
    assert m.get_layer("hidden_0_dense").use_bias is False
    assert m.get_layer("head").use_bias is True


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "elu", "leaky_relu", "linear", "selu", "gelu", "swish",
                                 "softplus"])
def test_every_activation_builds_and_trains_one_step(act):
    m = mlp.build(mlp.HParams(depth=1, width=8, activation=act), DIGITS)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    hist = m.fit(DIGITS.train.x[:64], DIGITS.train.y[:64], epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    assert m.get_layer("hidden_0_act").name == "hidden_0_act"


def test_standard_uniform_init_is_bounded_by_one_over_sqrt_fan_in():
    m = mlp.build(mlp.HParams(depth=1, width=256, init="standard_uniform"), DIGITS)
    w = np.asarray(m.get_layer("hidden_0_dense").kernel)
    bound = 1 / np.sqrt(64)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.9 * bound  # a uniform over the whole interval, not a narrower one
    small = mlp.build(mlp.HParams(depth=1, width=256, init="small_normal"), DIGITS)
    assert np.std(np.asarray(small.get_layer("hidden_0_dense").kernel)) == pytest.approx(0.01, rel=0.1)


def test_mlp_takes_the_shared_switches_and_names_its_layers_like_the_blocks():
    assert issubclass(mlp.HParams, blocks.Switches)
    assert mlp.HParams().init == "glorot_uniform" and blocks.Switches().init == "he_normal"  # the MLP keeps its own
    m = mlp.build(mlp.HParams(depth=2, width=8, batch_norm=True), DIGITS)
    assert [l.name for l in m.layers] == [
        "inputs", "augment", "input_noise", "input_dropout",
        "hidden_0_dense", "hidden_0_bn", "hidden_0_act", "hidden_0_dropout",
        "hidden_1_dense", "hidden_1_bn", "hidden_1_act", "hidden_1_dropout", "head"]
    assert [(h.dense.name, h.last.name) for h in mlp.hidden_layers(m, 2)] == [
        ("hidden_0_dense", "hidden_0_dropout"), ("hidden_1_dense", "hidden_1_dropout")]
    # Images are flattened after the input layers; flips and shifts need images, so flat inputs refuse them.
    images = mlp.build(mlp.HParams(depth=1, width=8, augment="flip"), _info((8, 8, 1)))
    assert images.get_layer("flatten").output.shape == (None, 64)
    with pytest.raises(ValueError, match="augment = 'flip' flips and shifts images.*flat vectors"):
        mlp.build(mlp.HParams(depth=1, width=8, augment="flip"), DIGITS)


def test_mlp_max_norm_needs_hidden_layers():
    with pytest.raises(ValueError, match="max_norm constrains hidden layers; this mlp has depth = 0, so it has none"):
        mlp.HParams(depth=0, max_norm=3.0)
    assert mlp.HParams(depth=1, max_norm=3.0).max_norm == 3.0
    assert mlp.HParams(depth=0).depth == 0  # depth 0 alone is softmax regression, allowed


def test_registry_refuses_unknown_names_listing_known_ones():
    with pytest.raises(ValueError, match="known models: autoencoder, cnn, conv_autoencoder, gan, inception, inception_v3, logistic, mlp, "
                                         "mobilenet, mobilenet_v2, perceptron, resnet, resnet50, rnn, tcn, transformer, vae, vgg"):
        models.get("lenet9")
    with pytest.raises(ValueError, match=r"known datasets: (\w+, )*digits, (\w+, )*spirals"):
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


# === Convolutional families, linear models and keras.applications ===


def _info(shape: tuple[int, ...], classes: int = 10):
    """A stand-in for a DatasetInfo: the builders read only the input shape and the number of classes."""
    return types.SimpleNamespace(input_shape=shape, num_classes=classes, task="classification", vocab=0)


def _build(name: str, shape: tuple[int, ...], **params):
    entry = models.get(name)
    return entry.build(entry.hparams(**params), _info(shape))


# Small settings, so that every builder builds in well under a second.
SMALL = {
    "logistic": {},
    "perceptron": {},
    "cnn": dict(filters=4, kernel_size=3, dense=8),
    "vgg": dict(width=4, dense=8),
    "resnet": dict(depth=8),
    "mobilenet": dict(width_multiplier=0.25, blocks=4),
    "inception": dict(width=4, modules_per_stage=1),
}


@pytest.mark.parametrize("shape", [(8, 8, 1), (32, 32, 3)])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_builder_takes_small_and_cifar_sized_images(name, shape):
    model = _build(name, shape, **SMALL[name])
    assert model.output_shape == (None, 10)
    out = np.asarray(model(np.random.default_rng(0).uniform(size=(2, *shape)).astype("float32")))
    assert out.shape == (2, 10)
    if name != "perceptron":  # softmax probabilities; the perceptron outputs raw class scores
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_cnn_takes_sequences_with_1d_layers():
    model = _build("cnn", (40, 1), **SMALL["cnn"])
    assert model.output_shape == (None, 10)
    assert len(_layers(model, "Conv1D")) == 2 and not _layers(model, "Conv2D")
    assert [type(l).__name__ for l in model.layers if "pool" in l.name] == ["MaxPooling1D", "MaxPooling1D", "Flatten"]
    # 40 -> 20 -> 10 positions of 8 filters, flattened.
    assert model.get_layer("global_pool").output.shape == (None, 80)
    strided = _build("cnn", (40, 1), **SMALL["cnn"], pooling="none", global_pooling="global_max")
    assert [l.strides for l in _layers(strided, "Conv1D")] == [(2,), (2,)]
    assert type(strided.get_layer("global_pool")).__name__ == "GlobalMaxPooling1D"


@pytest.mark.parametrize("name, params, expected", [
    # conv 3*3*1*4+4, conv 3*3*4*8+8, dense (2*2*8)*8+8, head 8*10+10
    ("cnn", dict(blocks=2, filters=4, kernel_size=3, dense=8), 40 + 296 + 264 + 90),
    # stage 0: 3*3*1*4+4, 3*3*4*4+4; stage 1: 3*3*4*8+8, 3*3*8*8+8; dense (2*2*8)*8+8; head 8*10+10
    ("vgg", dict(stages=2, width=4, convs_per_stage=2, dense=8, dense_layers=1), 40 + 148 + 296 + 584 + 264 + 90),
    # stem 3*3*1*16 + BN 4*16; stage 0: 2 x (3*3*16*16 + BN 64); stage 1: 3*3*16*32 + 3*3*32*32 + 2 BN 128 and the
    # projection 16*32 + BN 128; stage 2: 3*3*32*64 + 3*3*64*64 + 2 BN 256, projection 32*64 + BN 256; head 64*10+10
    ("resnet", dict(depth=8), 208 + 4736 + 14720 + 58112 + 650),
    # the same without the two projection shortcuts
    ("resnet", dict(depth=8, residual=False), 78426 - (512 + 128) - (2048 + 256)),
    # stem 3*3*1*8 + BN 32; block 0: depthwise 3*3*8 + BN 32, pointwise 8*16 + BN 64; block 1: depthwise 3*3*16 +
    # BN 64, pointwise 16*32 + BN 128; head 32*10+10
    ("mobilenet", dict(width_multiplier=0.25, blocks=2), 104 + 296 + 848 + 330),
    # the same with standard convs: 3*3*8*16 + BN 64, 3*3*16*32 + BN 128
    ("mobilenet", dict(width_multiplier=0.25, blocks=2, separable=False), 104 + 1216 + 4736 + 330),
    # stem 3*3*1*12+12; module (w=4, 12 inputs): 1x1 12*4+4, 12*6+6 -> 3*3*6*8+8, 12*1+1 -> 5*5*1*2+2, pool ->
    # 12*2+2 (16 outputs); head 16*10+10
    ("inception", dict(width=4, stages=1, modules_per_stage=1, batch_norm=False),
     120 + 52 + 78 + 440 + 13 + 52 + 26 + 170),
    # naive module: 1x1 12*4+4, 3*3*12*8+8, 5*5*12*2+2, pool (26 outputs); head 26*10+10
    ("inception", dict(width=4, stages=1, modules_per_stage=1, batch_norm=False, reductions=False),
     120 + 52 + 872 + 602 + 270),
    # one Dense 64*10+10 on the flattened 8x8 image
    ("logistic", {}, 650),
    ("perceptron", {}, 650),
])
def test_parameter_counts_match_hand_computation(name, params, expected):
    assert _build(name, (8, 8, 1), **params).count_params() == expected


def test_resnet_residual_off_is_the_same_network_without_shortcuts():
    res, plain = _build("resnet", (8, 8, 1), depth=14), _build("resnet", (8, 8, 1), depth=14, residual=False)
    assert len(_layers(res, "Add")) == 6  # 3 stages x 2 blocks
    assert not _layers(plain, "Add")
    assert [l.name for l in plain.layers if "proj" in l.name] == []
    # Every other layer is shared: the plain network is the residual one minus Add and the projections.
    assert sorted(l.name for l in res.layers if "_add" not in l.name and "proj" not in l.name) == sorted(
        l.name for l in plain.layers)


def test_resnet_depth_must_be_6n_plus_2():
    from dlbench.models import resnet

    assert resnet.HParams(depth=56).blocks_per_stage == 9
    with pytest.raises(ValueError, match=r"resnet depth must be 6n\+2 .*got depth = 21"):
        resnet.HParams(depth=21)


def test_mobilenet_separable_switch_uses_depthwise_convs():
    sep = _build("mobilenet", (32, 32, 3), width_multiplier=0.25, blocks=4)
    std = _build("mobilenet", (32, 32, 3), width_multiplier=0.25, blocks=4, separable=False)
    assert len(_layers(sep, "DepthwiseConv2D")) == 4
    assert not _layers(std, "DepthwiseConv2D")
    assert [l.kernel_size for l in _layers(std, "Conv2D")] == [(3, 3)] * 5  # stem and one conv per block
    # Strides as in MobileNet's table: (64, 1), (128, 2), (128, 1), (256, 2).
    assert [l.strides for l in _layers(sep, "DepthwiseConv2D")] == [(1, 1), (2, 2), (1, 1), (2, 2)]
    assert sep.get_layer("block_3_pw_conv").filters == 64


@pytest.mark.parametrize("init, variance", [("he_normal", 2 / 9), ("glorot_uniform", 1 / 9),
                                            ("standard_uniform", 1 / 27)])
def test_depthwise_kernels_are_scaled_to_their_true_fan_in(init, variance):
    # A 3x3 depthwise kernel of 64 channels: each output sees 9 inputs and each input feeds 9 outputs (fan_in = fan_out
    # = 9), not fan_in 9 * 64 as Keras computes for that kernel shape. He: 2 / fan_in; Glorot: 2 / (fan_in + fan_out).
    kernel = np.asarray(blocks.depthwise_initializer(init, 64, seed=0)((3, 3, 64, 1)))
    assert kernel.var() == pytest.approx(variance, rel=0.1)


def test_separable_mobilenet_keeps_the_signal_through_its_blocks():
    # Without the fan-in correction each depthwise layer shrank the signal by sqrt(channels): after six blocks the
    # activations were orders of magnitude smaller than the input and batch norm's moving statistics (which start
    # at variance 1) lagged far behind, so inference collapsed while training accuracy looked fine.
    model = _build("mobilenet", (8, 8, 1), width_multiplier=0.5, blocks=6, batch_norm=False)
    x = DIGITS.train.x[:256].reshape(-1, 8, 8, 1)
    for i in range(6):
        out = np.asarray(_output(model, f"block_{i}_pw_act", x))
        assert 0.1 < out.std() / x.std() < 10, (i, out.std() / x.std())


def _output(model, layer: str, x):
    import keras

    return keras.Model(model.input, model.get_layer(layer).output)(x, training=False)


def test_pooling_none_downsamples_with_strided_convs():
    pooled = _build("cnn", (8, 8, 1), **SMALL["cnn"])
    strided = _build("cnn", (8, 8, 1), **SMALL["cnn"], pooling="none")
    assert len(_layers(pooled, "MaxPooling2D")) == 2
    assert not [l for l in strided.layers if "Pooling" in type(l).__name__]
    assert [l.strides for l in _layers(strided, "Conv2D")] == [(2, 2), (2, 2)]
    assert strided.get_layer("block_1_0_conv").output.shape == (None, 2, 2, 8)
    assert strided.count_params() == pooled.count_params()  # the same weights, only the downsampling differs
    avg = _build("vgg", (8, 8, 1), width=4, dense=8, pooling="average", global_pooling="global_average")
    assert len(_layers(avg, "AveragePooling2D")) == 3
    assert avg.get_layer("global_pool").output.shape == (None, 16)


def test_inception_module_concatenates_four_branches():
    m = _build("inception", (8, 8, 1), width=8, stages=2, modules_per_stage=1)
    # w = 8: 1x1 8, 3x3 16, 5x5 4, pool projection 4; the second stage doubles w.
    assert m.get_layer("stage_0_module_0_concat").output.shape == (None, 8, 8, 32)
    assert m.get_layer("stage_1_module_0_concat").output.shape == (None, 4, 4, 64)
    assert m.get_layer("stage_0_module_0_3x3_reduce_conv").filters == 12


def test_catalogue_switches_apply_to_every_conv_block():
    m = _build("vgg", (8, 8, 1), width=4, dense=8, activation="tanh", batch_norm=True, dropout=0.25,
               init="standard_uniform")
    convs = _layers(m, "Conv2D")
    assert len(convs) == 6 and all(not c.use_bias for c in convs)
    assert len(_layers(m, "BatchNormalization")) == 6 + 2  # each conv and each hidden dense layer
    hidden_dropouts = [l for l in _layers(m, "Dropout") if l.name != "input_dropout"]
    assert {l.rate for l in hidden_dropouts} == {0.25} and len(hidden_dropouts) == 8
    assert {l.activation.__name__ for l in _layers(m, "Activation")} == {"tanh"}
    bound = 1 / np.sqrt(3 * 3 * 4)  # standard_uniform: U[-1/sqrt(fan_in), 1/sqrt(fan_in)]
    assert np.abs(np.asarray(m.get_layer("stage_0_1_conv").kernel)).max() <= bound
    # Dropout is always present, so dropout arms have the same layer names.
    plain = _build("vgg", (8, 8, 1), width=4, dense=8, batch_norm=True)
    assert [l.name for l in plain.layers] == [l.name for l in m.layers]


@pytest.mark.parametrize("name", ["cnn", "vgg", "resnet", "mobilenet", "inception"])
def test_image_builders_say_what_inputs_they_take(name):
    entry = models.get(name)
    assert entry.accepts((32, 32, 3)) is None
    assert "needs images" in entry.accepts((64,))
    with pytest.raises(ValueError, match="needs images"):
        _build(name, (64,))
    assert (entry.accepts((40, 1)) is None) == (name == "cnn")


# === Technique switches (blocks.Switches) ===

PROBE = np.array([[-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]], dtype="float32")
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
_ERF = np.vectorize(math.erf)
ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "linear": lambda x: x,
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1)),
    "gelu": lambda x: 0.5 * x * (1 + _ERF(x / np.sqrt(2))),  # the exact (erf) form, Keras's default
    "swish": lambda x: x / (1 + np.exp(-x)),
    "softplus": lambda x: np.log1p(np.exp(x)),
}


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_each_activation_layer_computes_its_function(act):
    m = mlp.build(mlp.HParams(depth=1, width=7, activation=act), _info((7,)))
    m.get_layer("hidden_0_dense").set_weights([np.eye(7, dtype="float32"), np.zeros(7, dtype="float32")])
    out = np.asarray(_output(m, "hidden_0_act", PROBE))  # the activation applied to the probe itself
    np.testing.assert_allclose(out, ACTIVATIONS[act](PROBE.astype("float64")), rtol=1e-5, atol=1e-6)


def test_negative_slope_sets_the_leaky_relu_slope_in_every_block():
    # leaky_relu(-1) = -negative_slope; positive inputs pass unchanged.
    layer = blocks.activation("leaky_relu", "act", negative_slope=0.2)
    np.testing.assert_allclose(np.asarray(layer(np.array([[-1.0, -0.5, 2.0]], dtype="float32"))), [[-0.2, -0.1, 2.0]])
    m = _build("resnet", (8, 8, 1), depth=8, activation="leaky_relu", negative_slope=0.2)
    slopes = {l.name: l.negative_slope for l in _layers(m, "LeakyReLU")}
    assert len(slopes) == 1 + 3 * 2 and set(slopes.values()) == {0.2}  # the stem, and each block's a_act and out_act
    assert "stage_0_block_0_out_act" in slopes
    assert _build("cnn", (8, 8, 1), **SMALL["cnn"], activation="leaky_relu").get_layer(
        "hidden_act").negative_slope == 0.01  # the default


def _kernels(model) -> dict[str, tuple]:
    """Layer name -> (regularizer, constraint) of every kernel: Dense, Conv and depthwise conv layers."""
    import keras

    out = {}
    for l in model.layers:
        if isinstance(l, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
            out[l.name] = (l.depthwise_regularizer, l.depthwise_constraint)
        elif isinstance(l, (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D)):
            out[l.name] = (l.kernel_regularizer, l.kernel_constraint)
    return out


@pytest.mark.parametrize("name, shape, params, expected_kernels", [
    ("mlp", (64,), dict(depth=2, width=8), 3),
    ("cnn", (8, 8, 1), SMALL["cnn"], 4),  # two convs, the hidden dense layer and the head
    ("mobilenet", (8, 8, 1), dict(width_multiplier=0.25, blocks=2), 6),  # stem, 2 x (depthwise, pointwise), head
    ("resnet", (8, 8, 1), dict(depth=8), 10),  # stem, 3 x 2 convs, 2 projections, head
])
def test_l1_l2_penalize_every_kernel_including_the_head(name, shape, params, expected_kernels):
    import keras

    m = _build(name, shape, **params, l1=1e-3, l2=1e-2)
    kernels = _kernels(m)
    assert len(kernels) == expected_kernels and "head" in kernels
    for layer, (reg, _) in kernels.items():
        assert type(reg) is keras.regularizers.L1L2, layer
        assert (reg.l1, reg.l2) == pytest.approx((1e-3, 1e-2)), layer
    # The model's regularization loss is the penalty of exactly these kernels: sum l1 |w| + l2 w^2.
    weights = [np.asarray(m.get_layer(layer).kernel) for layer in kernels]  # a depthwise layer's too
    expected = sum(1e-3 * np.abs(w).sum() + 1e-2 * np.square(w).sum() for w in weights)
    assert sum(float(x) for x in m.losses) == pytest.approx(expected, rel=1e-5)
    # Off (both 0): no regularizer object and no loss term at all.
    off = _build(name, shape, **params)
    assert {reg for reg, _ in _kernels(off).values()} == {None} and not off.losses


@pytest.mark.parametrize("name, shape, params, axes", [
    ("mlp", (64,), dict(depth=2, width=8), {"hidden_0_dense": 0, "hidden_1_dense": 0}),
    ("cnn", (8, 8, 1), SMALL["cnn"], {"block_0_0_conv": [0, 1, 2], "block_1_0_conv": [0, 1, 2], "hidden_dense": 0}),
    ("cnn", (40, 1), SMALL["cnn"], {"block_0_0_conv": [0, 1], "block_1_0_conv": [0, 1], "hidden_dense": 0}),
    ("mobilenet", (8, 8, 1), dict(width_multiplier=0.25, blocks=1),
     {"stem_conv": [0, 1, 2], "block_0_dw_dwconv": [0, 1], "block_0_pw_conv": [0, 1, 2]}),
])
def test_max_norm_constrains_each_hidden_units_incoming_weights_not_the_head(name, shape, params, axes):
    import keras

    m = _build(name, shape, **params, max_norm=2.0)
    constraints = {layer: c for layer, (_, c) in _kernels(m).items()}
    assert constraints.pop("head") is None
    assert set(constraints) == set(axes)
    for layer, c in constraints.items():
        assert type(c) is keras.constraints.MaxNorm and c.max_value == 2.0 and c.axis == axes[layer], layer
        # A kernel far too large comes back with every unit's incoming vector rescaled to norm 2 exactly; the norm
        # is over every axis but the unit's own (the last, or for a depthwise kernel the last two).
        kernel = np.asarray(m.get_layer(layer).kernel)
        big = np.random.default_rng(0).normal(10.0, 1.0, size=kernel.shape).astype("float32")
        unit_axes = tuple(range(kernel.ndim - (2 if "dw" in layer else 1)))
        norms = np.sqrt(np.square(np.asarray(c(big))).sum(axis=unit_axes))
        np.testing.assert_allclose(norms, 2.0, rtol=1e-5)
        small = big / (10 * np.sqrt(np.square(big).sum(axis=unit_axes, keepdims=True)))  # norms 0.1: untouched
        np.testing.assert_allclose(np.asarray(c(small)), small, rtol=1e-5)
    assert {c for _, c in _kernels(_build(name, shape, **params)).values()} == {None}  # off by default


def test_max_norm_holds_after_a_training_step():
    # Keras applies the constraint after each optimizer update: a huge learning rate cannot push a hidden unit's
    # incoming weights past max_norm, while the (unconstrained) head grows past it.
    import keras

    m = mlp.build(mlp.HParams(depth=1, width=8, max_norm=0.5), DIGITS)
    norms = lambda layer: np.sqrt(np.square(np.asarray(m.get_layer(layer).kernel)).sum(axis=0))  # noqa: E731
    assert norms("hidden_0_dense").min() > 0.5  # glorot_uniform from 64 inputs: norms near 0.94
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=100.0), loss="sparse_categorical_crossentropy")
    m.fit(DIGITS.train.x[:64], DIGITS.train.y[:64], epochs=1, batch_size=64, verbose=0)
    np.testing.assert_allclose(norms("hidden_0_dense"), 0.5, rtol=1e-4)
    assert norms("head").max() > 0.5


def test_input_noise_and_dropout_act_while_training_and_are_the_identity_at_inference():
    off = mlp.build(mlp.HParams(depth=2, width=16), DIGITS)
    on = mlp.build(mlp.HParams(depth=2, width=16, input_noise=0.5, input_dropout=0.5), DIGITS)
    assert [l.name for l in on.layers] == [l.name for l in off.layers]
    on.set_weights(off.get_weights())
    x = DIGITS.train.x[:32]
    np.testing.assert_array_equal(np.asarray(on(x, training=False)), np.asarray(off(x, training=False)))
    # At 0 (hidden dropout 0 too) training changes nothing; switched on, the outputs move.
    np.testing.assert_array_equal(np.asarray(off(x, training=True)), np.asarray(off(x, training=False)))
    assert np.abs(np.asarray(on(x, training=True)) - np.asarray(off(x, training=False))).max() > 1e-3
    # Each layer by value: noise of standard deviation 0.5; dropout zeroes half the inputs and doubles the rest.
    zeros, ones = np.zeros((200, 64), dtype="float32"), np.ones((200, 64), dtype="float32")
    noise = np.asarray(on.get_layer("input_noise")(zeros, training=True))
    assert noise.std() == pytest.approx(0.5, rel=0.05) and abs(noise.mean()) < 0.02
    dropped = np.asarray(on.get_layer("input_dropout")(ones, training=True))
    assert set(np.unique(dropped)) == {0.0, 2.0} and (dropped == 0).mean() == pytest.approx(0.5, abs=0.03)
    # The convolutional families share the same input layers.
    cnn_model = _build("cnn", (8, 8, 1), **SMALL["cnn"], input_noise=0.1, input_dropout=0.2)
    assert [l.name for l in cnn_model.layers[:4]] == ["inputs", "augment", "input_noise", "input_dropout"]
    assert (cnn_model.get_layer("input_noise").stddev, cnn_model.get_layer("input_dropout").rate) == (0.1, 0.2)


def _order(model, prefix: str) -> list[str]:
    return [l.name[len(prefix) + 1:] for l in model.layers if l.name.startswith(prefix + "_")]


def test_bn_position_after_puts_batch_norm_after_the_activation_and_keeps_the_bias():
    before = mlp.build(mlp.HParams(depth=1, width=8, batch_norm=True), DIGITS)
    after = mlp.build(mlp.HParams(depth=1, width=8, batch_norm=True, bn_position="after"), DIGITS)
    assert _order(before, "hidden_0") == ["dense", "bn", "act", "dropout"]
    assert _order(after, "hidden_0") == ["dense", "act", "bn", "dropout"]
    assert before.get_layer("hidden_0_dense").use_bias is False and after.get_layer("hidden_0_dense").use_bias is True
    # By value: with BN's beta at -5 a ReLU block ends negative only when BN comes after the ReLU.
    for model, negative in ((before, False), (after, True)):
        bn = model.get_layer("hidden_0_bn")
        gamma, beta, mean, var = bn.get_weights()
        bn.set_weights([gamma, beta - 5.0, mean, var])
        out = np.asarray(_output(model, "hidden_0_dropout", DIGITS.train.x[:16]))
        assert (out.max() < 0) if negative else (out.min() >= 0)
    cnn_after = _build("cnn", (8, 8, 1), **SMALL["cnn"], batch_norm=True, bn_position="after")
    assert _order(cnn_after, "block_0_0") == ["conv", "act", "bn", "dropout"]
    assert all(c.use_bias for c in _layers(cnn_after, "Conv2D"))
    # Without batch_norm the position changes nothing.
    plain = [l.name for l in _build("cnn", (8, 8, 1), **SMALL["cnn"]).layers]
    assert [l.name for l in _build("cnn", (8, 8, 1), **SMALL["cnn"], bn_position="after").layers] == plain


def _feeds(model, name: str) -> list[str]:
    """The layers whose outputs layer `name` reads, from the graph (model.layers orders branches by depth)."""
    inputs = model.get_layer(name).input
    return [l.name for t in (inputs if isinstance(inputs, list) else [inputs]) for l in model.layers if l.output is t]


def test_resnet_bn_after_normalizes_each_activation_including_the_one_after_the_add():
    block = "stage_1_block_0"  # downsampling: it has the projection shortcut
    before = _build("resnet", (8, 8, 1), depth=8)
    assert _feeds(before, f"{block}_a_act") == [f"{block}_a_bn"]
    assert _feeds(before, f"{block}_add") == [f"{block}_b_bn", f"{block}_proj_bn"]
    assert _feeds(before, f"{block}_out_act") == [f"{block}_add"]
    after = _build("resnet", (8, 8, 1), depth=8, bn_position="after")
    assert _feeds(after, f"{block}_a_bn") == [f"{block}_a_act"]
    assert _feeds(after, f"{block}_add") == [f"{block}_b_conv", f"{block}_proj_conv"]  # biased, normalized below
    assert _feeds(after, f"{block}_out_bn") == [f"{block}_out_act"]
    assert _feeds(after, "stage_2_block_0_a_conv") == [f"{block}_out_bn"]  # the next block reads the BN
    assert all(c.use_bias for c in _layers(after, "Conv2D"))
    # One BN per activation: the stem, and each block's a_act and out_act.
    assert len(_layers(after, "BatchNormalization")) == len(_layers(after, "Activation")) == 1 + 3 * 2


# === Augmentation ===


def _augmented(kind: str, seed: int, x: np.ndarray, training: bool = True) -> np.ndarray:
    import keras

    keras.utils.set_random_seed(seed)
    return np.asarray(blocks.augmentation(kind, rank=2)(x, training=training))


def test_augmentation_is_seeded_and_only_active_while_training():
    from dlbench import train

    # With op determinism on (as in every run), the run seed fixes the flips and the shifts.
    runtime.set_determinism(True)
    x = np.random.default_rng(0).uniform(0.1, 1.0, size=(16, 32, 32, 1)).astype("float32")
    for kind in ("flip", "shift", "flip_shift"):
        np.testing.assert_array_equal(_augmented(kind, 0, x, training=False), x)
        a, b, c = _augmented(kind, 1, x), _augmented(kind, 1, x), _augmented(kind, 2, x)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    flipped = _augmented("flip", 1, x)
    for img, out in zip(x, flipped):  # each image is kept or mirrored left-right
        assert np.array_equal(out, img) or np.array_equal(out, img[:, ::-1])
    assert 0 < sum(not np.array_equal(o, i) for o, i in zip(flipped, x)) < len(x)
    shifted = _augmented("shift", 1, x)
    assert (shifted == 0).any() and not (x == 0).any()  # zeros shifted in at the borders
    # Whole-pixel shifts: every value of a shifted image is one of its own pixels or 0.
    assert all(np.isin(o, np.append(i, 0.0)).all() for o, i in zip(shifted, x))


def test_augment_switch_keeps_layer_names_and_trains_one_step():
    none = _build("cnn", (8, 8, 1), **SMALL["cnn"])
    aug = _build("cnn", (8, 8, 1), **SMALL["cnn"], augment="flip_shift")
    assert [l.name for l in none.layers] == [l.name for l in aug.layers]
    assert [type(l).__name__ for l in aug.get_layer("augment").layers] == ["RandomFlip", "RandomTranslation"]
    x = DIGITS.train.x[:64].reshape(-1, 8, 8, 1)
    np.testing.assert_array_equal(np.asarray(aug.get_layer("augment")(x[:4], training=False)), x[:4])
    aug.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    hist = aug.fit(x, DIGITS.train.y[:64], epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    with pytest.raises(ValueError, match="sequences"):
        _build("cnn", (40, 1), augment="flip")


def test_training_with_augmentation_repeats_exactly_under_the_same_seed():
    from dlbench import train

    runtime.set_determinism(True)  # as every run does
    images = lambda split: data.Split(split.x[:256].reshape(-1, 8, 8, 1), split.y[:256])  # noqa: E731
    ds = types.SimpleNamespace(input_shape=(8, 8, 1), num_classes=10, task="classification", vocab=0, train=images(DIGITS.train),
                               val=images(DIGITS.val))
    hp = models.get("cnn").hparams(**SMALL["cnn"], augment="flip_shift")
    first, second = [train.fit(lambda: models.get("cnn").build(hp, ds), ds, train.TrainHParams(), epochs=1, seed=3,
                               monitor="val_accuracy").history for _ in range(2)]
    assert first == second  # the draws of the random layers are seeded too (the layer test above shows they vary)


# === Perceptron ===

# Scores of three examples over three classes, and their labels. The third has only negative scores: the hinge
# must compare with the best wrong class (-1.5), not with 0.
SCORES = np.array([[2.0, 1.0, -1.0], [0.5, 1.5, 1.0], [-1.5, -2.0, -5.0]], dtype="float32")
LABELS = np.array([0, 2, 1])


@pytest.mark.parametrize("kind, margin, per_example", [
    # max(0, margin + max_{j != y} s_j - s_y): 1 + 1 - 2, 1 + 1.5 - 1, 1 - 1.5 + 2
    ("crammer_singer", 1.0, [0.0, 1.5, 1.5]),
    # sum_{j != y} max(0, margin + s_j - s_y): (0 + 0), (0.5 + 1.5), (1.5 + 0)
    ("weston_watkins", 1.0, [0.0, 2.0, 1.5]),
    # the perceptron criterion: max(0, max_{j != y} s_j - s_y)
    ("crammer_singer", 0.0, [0.0, 0.5, 0.5]),
])
def test_multiclass_hinge_matches_hand_computation(kind, margin, per_example):
    from dlbench.models.losses import MulticlassHinge, multiclass_hinge

    np.testing.assert_allclose(np.asarray(multiclass_hinge(LABELS, SCORES, margin, kind)), per_example, rtol=1e-6)
    loss = MulticlassHinge(margin=margin, kind=kind)
    assert float(loss(LABELS.reshape(-1, 1).astype("float32"), SCORES)) == pytest.approx(np.mean(per_example))


def test_perceptron_compiles_with_its_hinge_and_reports_accuracy():
    entry = models.get("perceptron")
    hp = entry.hparams()
    model = entry.build(hp, _info((3,), classes=3))
    model.get_layer("head").set_weights([np.eye(3, dtype="float32"), np.zeros(3, dtype="float32")])  # scores = x
    model.compile(loss=entry.loss(hp), metrics=["accuracy"])
    scores = model.evaluate(SCORES, LABELS, verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(1.0)  # the Crammer-Singer mean above
    assert scores["accuracy"] == pytest.approx(1 / 3)  # argmax 0, 1, 0 against 0, 2, 1
    assert models.get("logistic").loss(models.get("logistic").hparams()) is None  # cross-entropy, the default


def test_perceptron_trains_through_the_trainer_on_integer_labels():
    from dlbench import train

    entry = models.get("perceptron")
    hp = entry.hparams(hinge="weston_watkins")
    result = train.fit(lambda: entry.build(hp, DIGITS), DIGITS, train.TrainHParams(learning_rate=0.01), epochs=2,
                       seed=0, monitor="val_accuracy", loss=entry.loss(hp))
    assert set(result.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert result.history["loss"][1] < result.history["loss"][0]
    assert result.best_value > 0.8  # chance is 0.1; a linear classifier reaches about 0.94 here


# === keras.applications ===


@pytest.mark.parametrize("name, minimum", [("resnet50", 32), ("mobilenet_v2", 32), ("inception_v3", 75)])
def test_applications_refuse_small_images_naming_the_minimum_and_the_option(name, minimum):
    entry = models.get(name)
    assert "keras.applications original" in entry.description
    with pytest.raises(ValueError, match=f"at least {minimum}x{minimum} pixels; got 8x8.*`image_size`"):
        _build(name, (8, 8, 1))
    assert entry.accepts((minimum, minimum, 3)) is None
    assert "image_size" in entry.accepts((minimum - 1, minimum - 1, 3))


@pytest.mark.parametrize("name, shape", [("resnet50", (32, 32, 3)), ("mobilenet_v2", (32, 32, 3)),
                                         ("inception_v3", (75, 75, 3))])
def test_applications_build_for_the_data(name, shape):
    model = _build(name, shape)
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, 10)


def test_registry_descriptions_say_which_models_are_dlbench_builders():
    ours = [n for n in models.names() if "scalable dlbench builder" in models.get(n).description]
    originals = [n for n in models.names() if "keras.applications original" in models.get(n).description]
    assert ours == ["cnn", "inception", "logistic", "mobilenet", "perceptron", "resnet", "vgg"]
    assert originals == ["inception_v3", "mobilenet_v2", "resnet50"]


# === Cost ===


def test_flops_of_a_tiny_dense_model():
    import keras

    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(3)(inputs)))
    assert cost.flops_per_example(model) == 2 * (5 * 3 + 3 * 2)
    seq_in = keras.Input((4, 5))  # a Dense on a sequence applies once per position
    assert cost.flops_per_example(keras.Model(seq_in, keras.layers.Dense(3)(seq_in))) == 2 * 4 * 5 * 3


def test_flops_of_a_tiny_conv_model_and_of_a_nested_one():
    import keras

    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3)(inputs)  # valid: 4x4 positions x 3*3*2*4
    x = keras.layers.BatchNormalization()(x)  # 4*4*4 elements
    x = keras.layers.Conv2D(2, 3, strides=2, padding="same")(x)  # 2x2 positions x 3*3*4*2
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)  # 2x2 positions x 3*3*2
    x = keras.layers.MaxPooling2D()(x)  # not counted
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(x))  # 2 inputs x 3
    model = keras.Model(inputs, outputs)
    macs = 16 * 72 + 64 + 4 * 72 + 4 * 18 + 2 * 3
    assert cost.flops_per_example(model) == 2 * macs
    nested = keras.Sequential([keras.Input((6, 6, 2)), model])
    assert cost.flops_per_example(nested) == 2 * macs


def test_flops_of_recurrent_and_attention_layers():
    import keras

    # A recurrent layer: per time step, its input kernel (in x gates*units) and its recurrent kernel
    # (units x gates*units): LSTM 4 gates, GRU 3; Bidirectional counts both directions.
    inputs = keras.Input((10, 3))
    assert cost.flops_per_example(keras.Model(inputs, keras.layers.LSTM(4)(inputs))) == 2 * 10 * (3 * 16 + 4 * 16)
    bidirectional = keras.layers.Bidirectional(keras.layers.GRU(4))(inputs)
    assert cost.flops_per_example(keras.Model(inputs, bidirectional)) == 2 * 2 * 10 * (3 * 12 + 4 * 12)
    # Self-attention over 10 positions of width 8, 2 heads of 4: four 8x8 projections per position, then
    # scores and weighted sum, 10 x 10 x 2 x 4 each.
    seq = keras.Input((10, 8))
    attended = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(seq, seq)
    assert cost.flops_per_example(keras.Model(seq, attended)) == 2 * (10 * 4 * 64 + 2 * 100 * 2 * 4)


def test_flops_of_a_builder():
    # cnn on 8x8x1: conv 8*8 positions x 3*3*1*4, conv 4*4 x 3*3*4*8 (after pooling), dense 32*8, head 8*10
    model = _build("cnn", (8, 8, 1), **SMALL["cnn"])
    assert cost.flops_per_example(model) == 2 * (64 * 36 + 16 * 288 + 256 + 80)
