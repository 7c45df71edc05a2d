"""Sequence builders (rnn, tcn, transformer) and their layers: shapes per task and input kind, parameter counts,
causality, position encodings, patches, the switches they take or refuse, and one training step each."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlbench import models
from dlbench.data._common import DatasetInfo, Split
from dlbench.models import rnn, tcn, transformer

CLASSES, TIME, FEATURES, VOCAB, BATCH = 3, 6, 3, 7, 4
# Tiny settings, so every model builds in well under a second.
SMALL = {"rnn": dict(units=4), "tcn": dict(filters=4, levels=2, kernel_size=2),
         "transformer": dict(key_dim=8, heads=2, ff_dim=8, layers=1, patch_size=4)}


def _info(task: str, shape: tuple[int, ...], vocab: int = 0, classes: int = CLASSES) -> DatasetInfo:
    """A real DatasetInfo of BATCH random examples per split, with targets of the task's shape."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, vocab, (BATCH, *shape)) if vocab else rng.normal(size=(BATCH, *shape)).astype("float32")
    y = {"classification": rng.integers(0, classes, BATCH), "regression": rng.normal(size=BATCH).astype("float32"),
         "tagging": rng.integers(0, classes, (BATCH, shape[0]))}[task]
    split = Split(x, y)
    return DatasetInfo("tiny", task, shape, 0 if task == "regression" else classes, split, split, split, vocab=vocab)


def _build(name: str, info: DatasetInfo, **params):
    entry = models.get(name)
    return entry.build(entry.hparams(**{**SMALL[name], **params}), info)


def _types(model, cls_name: str) -> list:
    return [l for l in model.layers if type(l).__name__ == cls_name]


# === Shapes ===


@pytest.mark.parametrize("vocab", [0, VOCAB], ids=["sequences", "tokens"])
@pytest.mark.parametrize("task, expected", [("classification", (BATCH, CLASSES)), ("regression", (BATCH, 1)),
                                            ("tagging", (BATCH, TIME, CLASSES))])
@pytest.mark.parametrize("name", ["rnn", "tcn", "transformer"])
def test_every_sequence_builder_gives_the_task_output_shape_for_sequences_and_tokens(name, task, expected, vocab):
    # Classification and regression read the sequence out into one vector; tagging gives one output per position.
    info = _info(task, (TIME,) if vocab else (TIME, FEATURES), vocab)
    model = _build(name, info)
    assert model.output_shape == (None, *expected[1:])
    out = np.asarray(model(info.train.x, training=False))
    assert out.shape == expected
    if task != "regression":  # softmax over the classes, per example or per position
        np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-5)
    if vocab:  # token ids go through the builder's own embedding
        assert model.get_layer("embedding").input_dim == VOCAB
        assert model.input.dtype == "int32"


def test_transformer_cuts_images_into_patches_like_a_vision_transformer():
    # 8x8x1 images in 4x4 patches: 4 positions of 16 pixels, projected to key_dim, the class token in front.
    model = _build("transformer", _info("classification", (8, 8, 1)))
    assert model.get_layer("patches").output.shape == (None, 4, 16)
    assert model.get_layer("projection").output.shape == (None, 4, 8)
    assert model.get_layer("class_token").output.shape == (None, 5, 8)
    assert model.get_layer("readout").output.shape == (None, 8)
    assert model.output_shape == (None, CLASSES)
    # Sides that are no multiple of the patch are zero-padded: 5x5 in 2x2 patches is a 3x3 grid.
    odd = _build("transformer", _info("classification", (5, 5, 1)), patch_size=2)
    assert odd.get_layer("patches").output.shape == (None, 9, 4)
    with pytest.raises(ValueError, match="cannot tag images"):
        _build("transformer", _info("tagging", (8, 8, 1)))


def test_transformer_tagging_drops_the_class_token_and_mean_readout_has_none():
    tagger = _build("transformer", _info("tagging", (TIME, FEATURES)))
    assert tagger.get_layer("class_token").output.shape == (None, TIME + 1, 8)
    assert tagger.get_layer("drop_class_token").output.shape == (None, TIME, 8)
    assert "readout" not in [l.name for l in tagger.layers]
    mean = _build("transformer", _info("classification", (TIME, FEATURES)), readout="mean")
    assert not _types(mean, "ClassToken")
    assert type(mean.get_layer("readout")).__name__ == "GlobalAveragePooling1D"


# === Parameter counts ===

IN, UNITS = FEATURES, 4
HEAD = UNITS * CLASSES + CLASSES


@pytest.mark.parametrize("cell, expected", [
    # SimpleRNN: input kernel, recurrent kernel, bias
    ("simple", UNITS * (IN + UNITS) + UNITS),
    # LSTM: four gates, each a SimpleRNN's weights
    ("lstm", 4 * (UNITS * (IN + UNITS) + UNITS)),
    # GRU (reset_after=True, Keras 3's default): three gates, each with an input and a recurrent bias
    ("gru", 3 * (UNITS * (IN + UNITS) + 2 * UNITS)),
])
def test_recurrent_parameter_counts_match_hand_computation(cell, expected):
    model = _build("rnn", _info("classification", (TIME, IN)), cell=cell)
    assert model.get_layer("rnn_0").count_params() == expected
    assert model.count_params() == expected + HEAD
    # Two directions: twice the weights and twice the features, so the head reads 2 * units.
    bi = _build("rnn", _info("classification", (TIME, IN)), cell=cell, bidirectional=True)
    assert bi.get_layer("rnn_0").output.shape == (None, 2 * UNITS)
    assert bi.count_params() == 2 * expected + 2 * UNITS * CLASSES + CLASSES
    tagger = _build("rnn", _info("tagging", (TIME, IN)), cell=cell, bidirectional=True)
    assert tagger.get_layer("rnn_0").output.shape == (None, TIME, 2 * UNITS)


def test_flatten_readout_is_greydanus_mnist1d_gru():
    # Greydanus 2020's MNIST-1D GRU: bidirectional, 6 units, every one of the 40 steps' outputs into the linear
    # head; 5,134 parameters in the reference (PyTorch) code: 2 x 3 x (6 x 1 + 6 x 6 + 2 x 6) + (2 x 6 x 40) x 10 + 10.
    model = _build("rnn", _info("classification", (40, 1), classes=10), cell="gru", units=6, bidirectional=True,
                   readout="flatten")
    assert model.get_layer("readout").output.shape == (None, 2 * 6 * 40)
    assert model.count_params() == 5134


def test_stacked_and_token_rnn_parameter_counts():
    # Embedding 7 x 5, LSTM 5 -> 4, LSTM 4 -> 4, head.
    model = _build("rnn", _info("classification", (TIME,), VOCAB), embedding_dim=5, layers=2)
    assert model.count_params() == VOCAB * 5 + 4 * (4 * (5 + 4) + 4) + 4 * (4 * (4 + 4) + 4) + HEAD


def test_tcn_parameter_count_dilations_and_receptive_field():
    # kernel 2, 4 filters, 3 input features. Level 0: conv 2*3*4+4, conv 2*4*4+4, 1x1 skip 3*4+4 (3 != 4 channels);
    # level 1: two convs 2*4*4+4, no skip; head 4*3+3.
    model = _build("tcn", _info("classification", (TIME, IN)))
    assert model.count_params() == 28 + 36 + 16 + 2 * 36 + HEAD
    convs = [l for l in _types(model, "Conv1D") if "skip" not in l.name]
    assert [l.name for l in convs] == ["level_0_conv_0", "level_0_conv_1", "level_1_conv_0", "level_1_conv_1"]
    assert [l.dilation_rate for l in convs] == [(1,), (1,), (2,), (2,)]
    assert {l.padding for l in convs} == {"causal"}
    assert [l.name for l in _types(model, "Conv1D") if "skip" in l.name] == ["level_0_skip"]
    assert tcn.receptive_field(tcn.HParams(kernel_size=2, levels=2)) == 1 + 2 * 1 * 3
    assert tcn.receptive_field(tcn.HParams()) == 1 + 2 * 2 * 15  # 61 steps by default
    # Tokens embedded to as many channels as the filters need no skip convolution.
    tokens = _build("tcn", _info("classification", (TIME,), VOCAB), embedding_dim=4)
    assert not [l for l in tokens.layers if "skip" in l.name]


D, FF = 8, 16
TRANSFORMER_BLOCK = (2 * D  # attention layer norm
                     + 4 * (D * D + D)  # query, key, value (heads x key_dim / heads = D each) and output projection
                     + 2 * D  # feed-forward layer norm
                     + (D * FF + FF) + (FF * D + D))  # feed-forward


@pytest.mark.parametrize("params, expected", [
    # projection 3*8+8, one block, final norm, head 8*3+3
    (dict(readout="mean"), 32 + TRANSFORMER_BLOCK + 2 * D + D * CLASSES + CLASSES),
    # the class token adds D; learned positions a (TIME + 1) x D table
    (dict(readout="cls"), 32 + D + TRANSFORMER_BLOCK + 2 * D + D * CLASSES + CLASSES),
    (dict(readout="cls", positional="learned"), 32 + D + (TIME + 1) * D + TRANSFORMER_BLOCK + 2 * D + 27),
    # post-norm has no final norm
    (dict(readout="mean", norm_position="post"), 32 + TRANSFORMER_BLOCK + D * CLASSES + CLASSES),
])
def test_transformer_parameter_counts_match_hand_computation(params, expected):
    model = _build("transformer", _info("classification", (TIME, FEATURES)), key_dim=D, ff_dim=FF, **params)
    assert model.count_params() == expected
    assert model.get_layer("block_0_attn").count_params() == 4 * (D * D + D)


# === Causality of the TCN ===


def _tagger_outputs(model, x):
    return np.asarray(model(x, training=False))


@pytest.mark.parametrize("params", [dict(), dict(batch_norm=True), dict(batch_norm=True, bn_position="after")])
def test_tcn_output_at_a_step_reads_no_later_input(params):
    # Perturbing the inputs after step t leaves every output up to t unchanged (batch norm included: at inference
    # it is one affine map per channel); perturbing step t changes the output at t. tanh: no unit is ever dead.
    info = _info("tagging", (10, 2))
    model = _build("tcn", info, activation="tanh", **params)
    x = np.random.default_rng(1).normal(size=(2, 10, 2)).astype("float32")
    base = _tagger_outputs(model, x)
    for t in (0, 4, 8):
        later = x.copy()
        later[:, t + 1:] += 5.0
        np.testing.assert_allclose(_tagger_outputs(model, later)[:, :t + 1], base[:, :t + 1], rtol=1e-5, atol=1e-6)
        now = x.copy()
        now[:, t] += 5.0
        assert np.abs(_tagger_outputs(model, now)[:, t] - base[:, t]).max() > 1e-4


def test_tcn_output_reads_exactly_its_receptive_field():
    # kernel 2, 2 levels: receptive field 7, so the output at step 9 reads steps 3..9 and not step 2.
    model = _build("tcn", _info("tagging", (10, 2)), activation="tanh")
    x = np.random.default_rng(2).normal(size=(2, 10, 2)).astype("float32")
    base = _tagger_outputs(model, x)[:, 9]
    for step, reads in ((2, False), (3, True)):
        moved = x.copy()
        moved[:, step] += 5.0
        changed = np.abs(_tagger_outputs(model, moved)[:, 9] - base).max() > 1e-4
        assert changed == reads, step


# === Recurrent readouts and switches ===


def test_bidirectional_last_readout_is_each_direction_s_final_output():
    # With readout = "last" a bidirectional layer returns the forward direction's output after the last step and
    # the backward direction's after the first: its whole-sequence outputs at steps T-1 and 0, not both at T-1.
    info = _info("classification", (TIME, FEATURES))
    last = _build("rnn", info, cell="gru", bidirectional=True)
    tagger = _build("rnn", _info("tagging", (TIME, FEATURES)), cell="gru", bidirectional=True)
    tagger.get_layer("rnn_0").set_weights(last.get_layer("rnn_0").get_weights())
    x = info.train.x
    final = np.asarray(last.get_layer("rnn_0")(x))
    sequence = np.asarray(tagger.get_layer("rnn_0")(x))
    np.testing.assert_allclose(final[:, :UNITS], sequence[:, -1, :UNITS], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final[:, UNITS:], sequence[:, 0, UNITS:], rtol=1e-5, atol=1e-6)


def test_rnn_layer_names_are_the_same_across_readout_and_dropout_arms():
    info = _info("classification", (TIME, FEATURES))
    names = ["inputs", "augment", "input_noise", "input_dropout", "rnn_0", "rnn_0_dropout", "rnn_1", "rnn_1_dropout",
             "readout", "head"]
    for params in (dict(), dict(readout="mean"), dict(dropout=0.5), dict(bidirectional=True)):
        assert [l.name for l in _build("rnn", info, layers=2, **params).layers] == names, params
    mean = _build("rnn", info, readout="mean")
    assert type(mean.get_layer("readout")).__name__ == "GlobalAveragePooling1D"
    assert mean.get_layer("rnn_0").output.shape == (None, TIME, UNITS)
    tokens = _build("rnn", _info("tagging", (TIME,), VOCAB), layer_norm=True)
    assert [l.name for l in tokens.layers] == ["inputs", "embedding", "input_noise", "input_dropout", "rnn_0",
                                               "rnn_0_norm", "rnn_0_dropout", "head"]


def test_rnn_switches_act_on_the_recurrent_layers():
    info = _info("classification", (TIME, FEATURES))
    model = _build("rnn", info, layers=2, activation="relu", batch_norm=True, dropout=0.25, init="he_uniform",
                   l2=1e-3, max_norm=2.0, recurrent_dropout=0.1, input_noise=0.1)
    for i in range(2):
        cell = model.get_layer(f"rnn_{i}")
        assert cell.activation.__name__ == "relu"
        assert type(cell.cell.kernel_initializer).__name__ == "HeUniform"
        assert type(cell.cell.recurrent_initializer).__name__ == "Orthogonal"  # the recurrent kernel keeps its own
        assert cell.cell.kernel_regularizer.l2 == pytest.approx(1e-3)
        assert cell.cell.kernel_constraint.max_value == 2.0 and cell.cell.kernel_constraint.axis == 0
        assert cell.cell.recurrent_dropout == 0.1 and cell.cell.dropout == 0.0  # one meaning for `dropout`
        assert type(model.get_layer(f"rnn_{i}_bn")).__name__ == "BatchNormalization"
        assert model.get_layer(f"rnn_{i}_dropout").rate == 0.25
    assert model.get_layer("input_noise").stddev == 0.1
    assert len(model.losses) == 3  # the L2 penalty of both input kernels and of the head


@pytest.mark.parametrize("unit_forget_bias, forget", [(True, 1.0), (False, 0.0)])
def test_lstm_forget_gate_bias_starts_at_one_or_zero(unit_forget_bias, forget):
    model = _build("rnn", _info("classification", (TIME, FEATURES)), unit_forget_bias=unit_forget_bias)
    bias = np.asarray(model.get_layer("rnn_0").cell.bias)  # gates i, f, c, o
    np.testing.assert_array_equal(bias[UNITS:2 * UNITS], forget)
    np.testing.assert_array_equal(np.delete(bias, np.s_[UNITS:2 * UNITS]), 0.0)


def test_tcn_and_transformer_switches_act():
    info = _info("classification", (TIME, FEATURES))
    t = _build("tcn", info, activation="leaky_relu", negative_slope=0.2, batch_norm=True, dropout=0.3, max_norm=1.5)
    assert t.get_layer("level_1_conv_0_act").negative_slope == pytest.approx(0.2)
    assert t.get_layer("level_1_conv_0").use_bias is False  # BN before the activation replaces the bias
    assert t.get_layer("level_1_conv_0_dropout").rate == 0.3
    assert t.get_layer("level_1_conv_0").kernel_constraint.axis == [0, 1]
    m = _build("transformer", info, activation="relu", dropout=0.2, l1=1e-4, max_norm=3.0, init="he_normal")
    assert m.get_layer("block_0_ff_act").activation.__name__ == "relu"
    assert {l.rate for l in _types(m, "Dropout") if l.name != "input_dropout"} == {0.2}
    assert [l.name for l in _types(m, "Dropout") if l.name != "input_dropout"] == [
        "embedding_dropout", "block_0_attn_dropout", "block_0_ff_dropout"]
    assert m.get_layer("block_0_ff_1").kernel_constraint.max_value == 3.0
    assert m.get_layer("projection").kernel_constraint is None  # max-norm: the feed-forward units only
    assert m.get_layer("block_0_attn").get_config()["kernel_initializer"]["class_name"] == "HeNormal"
    # Layer norm before each sublayer and at the end, or after each residual Add.
    pre = [l.name for l in m.layers]
    post = [l.name for l in _build("transformer", info, norm_position="post").layers]
    assert pre.index("block_0_attn_norm") < pre.index("block_0_attn") and "final_norm" in pre
    assert post.index("block_0_attn_norm") > post.index("block_0_attn_add") and "final_norm" not in post
    # Position-encoding arms share their layer names.
    for positional, cls_name in (("learned", "LearnedPositionEmbedding"), ("none", "Identity")):
        other = _build("transformer", info, positional=positional)
        assert type(other.get_layer("position")).__name__ == cls_name
        assert [l.name for l in other.layers] == [l.name for l in _build("transformer", info).layers]


# === Refusals ===


@pytest.mark.parametrize("cls, params, field", [
    (transformer.HParams, dict(heads=3, key_dim=64), "heads"),
    (transformer.HParams, dict(batch_norm=True), "batch_norm"),
    (transformer.HParams, dict(bn_position="after"), "bn_position"),
    (rnn.HParams, dict(cell="gru", unit_forget_bias=False), "unit_forget_bias"),
    (rnn.HParams, dict(cell="simple", unit_forget_bias=False), "unit_forget_bias"),
    (rnn.HParams, dict(activation="leaky_relu"), "activation"),
    (rnn.HParams, dict(negative_slope=0.2), "negative_slope"),
    (rnn.HParams, dict(batch_norm=True, bn_position="after"), "bn_position"),
    (rnn.HParams, dict(augment="flip"), "augment"),
    (rnn.HParams, dict(batch_norm=True, layer_norm=True), "batch_norm"),
    (tcn.HParams, dict(augment="shift"), "augment"),
])
def test_hparams_refuse_switches_that_would_change_nothing(cls, params, field):
    # Each refusal names the field (in the message, and as `field` for the spec error), its value and the fix.
    with pytest.raises(ValueError, match=field) as error:
        cls(**params)
    assert error.value.field == field
    assert json.dumps(params[field]) in str(error.value)  # the value, as the spec writes it


def test_heads_must_divide_key_dim_with_the_documented_message():
    with pytest.raises(ValueError, match=r"heads \(3\) must divide key_dim \(64\): each head attends in key_dim / "
                                         r"heads dimensions"):
        transformer.HParams(heads=3)
    assert transformer.HParams(heads=4, key_dim=64).key_dim // 4 == 16
    assert rnn.HParams(batch_norm=True).bn_position == "before"  # batch norm after each layer: the one placement


def test_augment_is_refused_when_building_the_transformer_for_other_inputs_than_images():
    with pytest.raises(ValueError, match="augment = 'flip' flips and shifts images.*sequences"):
        _build("transformer", _info("classification", (TIME, FEATURES)), augment="flip")
    with pytest.raises(ValueError, match="augment = 'flip' flips and shifts images; transformer is given token ids"):
        _build("transformer", _info("classification", (TIME,), VOCAB), augment="flip")
    flipped = _build("transformer", _info("classification", (8, 8, 1)), augment="flip")
    assert type(flipped.get_layer("augment")).__name__ == "Sequential"


@pytest.mark.parametrize("name", ["rnn", "tcn", "transformer"])
def test_sequence_builders_say_what_inputs_they_take(name):
    entry = models.get(name)
    assert entry.accepts((TIME, FEATURES)) is None
    assert entry.tokens and entry.tasks == ("classification", "tagging", "regression")
    message = entry.accepts((64,))
    assert message.startswith(f"{name} needs sequences (time, features)") and 'shape = "rows"' in message
    assert (entry.accepts((8, 8, 1)) is None) == (name == "transformer")
    with pytest.raises(ValueError, match=f"{name} needs sequences"):
        _build(name, _info("classification", (64,)))


# === Layers ===


def _sinusoid(time: int, d: int) -> np.ndarray:
    pos, k = np.arange(time)[:, None], np.arange(d)[None, :]
    angle = pos / 10000.0 ** ((k // 2) * 2 / d)
    return np.where(k % 2 == 0, np.sin(angle), np.cos(angle))


@pytest.mark.parametrize("d", [4, 5])
def test_sinusoidal_encoding_is_vaswanis_formula(d):
    # PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...), odd d included; added to the inputs.
    from dlbench.models.sequence_layers import SinusoidalPositionEncoding

    x = np.random.default_rng(0).normal(size=(2, 7, d)).astype("float32")
    layer = SinusoidalPositionEncoding()
    out = np.asarray(layer(x))
    np.testing.assert_allclose(out - x, np.broadcast_to(_sinusoid(7, d), (2, 7, d)), rtol=1e-5, atol=1e-5)
    assert layer.count_params() == 0


def test_learned_position_embedding_and_class_token_shapes_and_weights():
    from dlbench.models.sequence_layers import ClassToken, DropClassToken, LearnedPositionEmbedding

    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    positions = LearnedPositionEmbedding(6)
    out = np.asarray(positions(x))
    assert positions.count_params() == 6 * 3
    np.testing.assert_allclose(out - x, np.broadcast_to(np.asarray(positions.embeddings)[:5], (2, 5, 3)), atol=1e-6)
    with pytest.raises(ValueError, match="holds 4 positions; the inputs have 5"):
        LearnedPositionEmbedding(4)(x)
    token = ClassToken()
    with_token = np.asarray(token(x))
    assert with_token.shape == (2, 6, 3) and token.count_params() == 3
    token.token.assign(np.array([[[1.0, 2.0, 3.0]]], dtype="float32"))
    with_token = np.asarray(token(x))
    np.testing.assert_array_equal(with_token[:, 0], [[1, 2, 3], [1, 2, 3]])
    np.testing.assert_array_equal(with_token[:, 1:], x)
    np.testing.assert_array_equal(np.asarray(DropClassToken()(with_token)), x)


def test_patches_are_row_major_and_padded():
    from dlbench.models.sequence_layers import Patches

    image = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(np.asarray(Patches(2)(image))[0], [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13],
                                                                     [10, 11, 14, 15]])
    # 5x5 in 2x2 patches: zero-padded to 6x6, a 3x3 grid.
    odd = np.asarray(Patches(2)(np.arange(1, 26, dtype="float32").reshape(1, 5, 5, 1)))[0]
    assert odd.shape == (9, 4)
    np.testing.assert_array_equal(odd[[0, 2, 6, 8]], [[1, 2, 6, 7], [5, 0, 10, 0], [21, 22, 0, 0], [25, 0, 0, 0]])
    # Within a patch: row by row, channels last.
    two = np.arange(8, dtype="float32").reshape(1, 2, 2, 2)
    np.testing.assert_array_equal(np.asarray(Patches(2)(two))[0], [np.arange(8)])
    assert Patches(2).compute_output_shape((None, 5, 5, 3)) == (None, 9, 12)


@pytest.mark.parametrize("cls_name, args", [("SinusoidalPositionEncoding", dict(max_wavelength=500.0)),
                                           ("LearnedPositionEmbedding", dict(max_length=9)), ("ClassToken", {}),
                                           ("DropClassToken", {}), ("TimeStep", dict(index=-1)),
                                           ("Patches", dict(patch_size=3))])
def test_custom_layers_round_trip_through_their_config(cls_name, args):
    # get_config -> from_config gives the same config (JSON-identical), also through Keras's registry by name.
    import keras

    from dlbench.models import sequence_layers

    original = getattr(sequence_layers, cls_name)(**args)
    config = original.get_config()
    assert {k: config[k] for k in args} == args  # every constructor argument is kept
    restored = type(original).from_config(config)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    again = keras.layers.deserialize(keras.layers.serialize(original))
    assert type(again) is type(original) and again.get_config() == config


# === Training ===


@pytest.mark.parametrize("name, task, shape, vocab", [
    ("rnn", "tagging", (TIME,), VOCAB),
    ("rnn", "regression", (TIME, FEATURES), 0),
    ("tcn", "classification", (TIME,), VOCAB),
    ("transformer", "classification", (8, 8, 1), 0),
    ("transformer", "tagging", (TIME, FEATURES), 0),
])
def test_one_training_step_gives_a_finite_loss(name, task, shape, vocab):
    info = _info(task, shape, vocab)
    model = _build(name, info, dropout=0.1)
    model.compile("adam", "mse" if task == "regression" else "sparse_categorical_crossentropy")
    history = model.fit(info.train.x, info.train.y, epochs=1, batch_size=BATCH, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_the_technique_catalogue_lists_a_switch_only_for_builders_that_honour_it():
    from dlbench import techniques

    applies = {t.name: set(t.applies_to) for t in techniques.catalogue()}
    # Refused switches are not listed: augment for the recurrent and convolutional sequence models (images only),
    # batch norm for the Transformer (layer norm), leaky_relu's slope for the RNN (a cell activation by name).
    assert {"rnn", "tcn"}.isdisjoint(applies["augment"]) and "transformer" in applies["augment"]
    assert "transformer" not in applies["batch_norm"] and {"rnn", "tcn"} <= applies["batch_norm"]
    assert "rnn" not in applies["negative_slope"] and "tcn" in applies["negative_slope"]
    assert {"rnn", "tcn", "transformer"} <= applies["dropout"]


def test_gradient_norms_include_a_token_embedding():
    import math

    from dlbench import gradnorms, train
    from dlbench.data import Split

    # An embedding's gradient is sparse (the looked-up rows); its norm is taken like any other layer's.
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (64, TIME)).astype("int32")
    split = Split(x, rng.integers(0, CLASSES, 64).astype("int32"))
    info = DatasetInfo("tokens", "classification", (TIME,), CLASSES, split, split, split, vocab=VOCAB)
    seen: list[dict] = []
    train.fit(lambda: _build("rnn", info), info, train.TrainHParams(grad_norm_every=1), epochs=1, seed=0,
              monitor="val_accuracy", hooks=[lambda epoch, logs: seen.append(logs)])
    norms = {k: v for k, v in seen[0].items() if k.startswith("grad_norm/")}
    assert set(norms) == {"grad_norm/embedding", "grad_norm/rnn_0", "grad_norm/head"}
    assert all(math.isfinite(v) and v > 0 for v in norms.values())
    assert gradnorms.layer_of("embedding/embeddings") == "embedding"
