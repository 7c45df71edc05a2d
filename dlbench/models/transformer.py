"""Transformer encoder (Vaswani et al. 2017) for tokens, sequences (time, features) and images cut into patches
(the Vision Transformer of Dosovitskiy et al. 2021).

Input stem to key_dim features per position (tokens: Embedding; sequences: Dense per step; images: patches then
Dense), an optional class token, a position encoding, `layers` encoder blocks (multi-head self-attention and a
feed-forward layer, each with dropout, a residual connection and layer norm before (pre-norm) or after
(post-norm)), then a readout (the class token's vector or the mean over positions) and the output head; for
tagging no readout, one output per input position.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import pydantic

from dlbench.models import blocks, refusals
from dlbench.models.blocks import Activation, Initializer
from dlbench.models.refusals import Refused, refuse

DESCRIPTION = ("Transformer: layers x encoder block (multi-head self-attention, feed-forward, residuals, pre- or "
               "post-layer norm), sinusoidal/learned/no position encoding, class-token or mean readout, dense head; "
               "tokens, sequences (time, features) or images cut into patches (ViT); classification, regression or "
               "tagging")

LN_EPSILON = 1e-6  # ViT's and the original Transformer's; Keras's default 1e-3 is meant for convolutional features


@dataclasses.dataclass(frozen=True)
class HParams(blocks.Switches):
    """The shared switches (`blocks.Switches`) and the Transformer's own.

    How the switches act here:
      activation: the feed-forward layer's (default gelu, as in BERT and ViT; negative_slope with leaky_relu).
      dropout: after the position encoding (`embedding_dropout`) and after each attention and feed-forward
        sublayer, before its residual Add (Vaswani et al. 2017, section 5.4); not on the attention probabilities.
      init, l1, l2: every kernel (input projection, attention, feed-forward, head); the token embedding keeps
        Keras's uniform init and no penalty.
      max_norm: the two feed-forward kernels, per unit (axis 0).
      input_noise, input_dropout: on the input features or pixels (tokens: on the embedded vectors).
      augment: images only (flips and shifts before the patches); refused when building for other inputs.
      batch_norm, bn_position: refused: the Transformer normalizes with layer norm, placed by norm_position.
    """

    layers: Annotated[int, pydantic.Field(ge=1, le=12)] = 2  # encoder blocks
    heads: Annotated[int, pydantic.Field(ge=1)] = 4
    # The model width d_model: every position's features, split across the heads (key_dim / heads each).
    key_dim: Annotated[int, pydantic.Field(ge=1)] = 64
    ff_dim: Annotated[int, pydantic.Field(ge=1)] = 128  # hidden units of the feed-forward layer
    positional: Literal["sinusoidal", "learned", "none"] = "sinusoidal"
    norm_position: Literal["pre", "post"] = "pre"  # layer norm before each sublayer (and at the end), or after the Add
    readout: Literal["cls", "mean"] = "cls"  # a learned class token prepended at position 0, or the mean over positions
    patch_size: Annotated[int, pydantic.Field(ge=1)] = 4  # images only: patch_size x patch_size pixels per position
    activation: Activation = "gelu"
    init: Initializer = "glorot_uniform"  # Keras's default for Dense and MultiHeadAttention kernels

    def __post_init__(self):
        if self.key_dim % self.heads:
            raise Refused("heads", f"heads ({self.heads}) must divide key_dim ({self.key_dim}): each head attends in "
                          "key_dim / heads dimensions")
        refuse(self, "batch_norm", "transformer", "normalizes with layer norm (placed by norm_position), not batch "
               "norm", "leave batch_norm = false")
        refuse(self, "bn_position", "transformer", "has no batch norm to place (its layer norm is placed by "
               "norm_position)", "leave bn_position = \"before\" and use norm_position")


def accepts(input_shape: tuple[int, ...]) -> str | None:
    """None for sequences (time, features) and images (height, width, channels), else why not (token datasets are
    let through by the registry)."""
    if len(input_shape) in (2, 3):
        return None
    return (f"transformer needs sequences (time, features), images (height, width, channels) or tokens; got inputs "
            f"of shape {tuple(input_shape)}: use a sequence or image dataset, or the digit data with shape = \"rows\", "
            "\"pixels\" or \"image\"")


def _dense(hp: HParams, units: int, name: str, constrained: bool = False):
    import keras

    return keras.layers.Dense(units, kernel_initializer=blocks.initializer(hp.init),
                              kernel_regularizer=blocks.regularizer(hp),
                              kernel_constraint=blocks.max_norm(hp, 0) if constrained else None, name=name)


def _norm(name: str):
    import keras

    return keras.layers.LayerNormalization(epsilon=LN_EPSILON, name=name)


def _encoder_block(x, hp: HParams, name: str):
    """One encoder block: `<name>_attn_norm`, `<name>_attn`, `<name>_attn_dropout`, `<name>_attn_add`, then
    `<name>_ff_norm`, `<name>_ff_1`, `<name>_ff_act`, `<name>_ff_2`, `<name>_ff_dropout`, `<name>_ff_add`; each norm
    before its sublayer (pre-norm) or after its Add (post-norm)."""
    import keras

    pre = hp.norm_position == "pre"
    h = _norm(f"{name}_attn_norm")(x) if pre else x
    h = keras.layers.MultiHeadAttention(hp.heads, hp.key_dim // hp.heads,
                                        kernel_initializer=blocks.initializer(hp.init),
                                        kernel_regularizer=blocks.regularizer(hp), name=f"{name}_attn")(h, h)
    h = keras.layers.Dropout(hp.dropout, name=f"{name}_attn_dropout")(h)
    x = keras.layers.Add(name=f"{name}_attn_add")([x, h])
    if not pre:
        x = _norm(f"{name}_attn_norm")(x)
    h = _norm(f"{name}_ff_norm")(x) if pre else x
    h = _dense(hp, hp.ff_dim, f"{name}_ff_1", constrained=True)(h)
    h = blocks.activation(hp.activation, f"{name}_ff_act", hp.negative_slope)(h)
    h = _dense(hp, hp.key_dim, f"{name}_ff_2", constrained=True)(h)
    h = keras.layers.Dropout(hp.dropout, name=f"{name}_ff_dropout")(h)
    x = keras.layers.Add(name=f"{name}_ff_add")([x, h])
    return x if pre else _norm(f"{name}_ff_norm")(x)


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the Transformer encoder.

    Layers: the input stem (tokens: `inputs`, `embedding`, `input_noise`, `input_dropout`; sequences: `inputs`,
    `augment`, `input_noise`, `input_dropout`, `projection`; images: the same with `patches` before
    `projection`), `class_token` (readout = "cls"), `position` (the identity for positional = "none", so the
    arms share their layer names), `embedding_dropout`, the blocks `block_<i>_...` (`_encoder_block`),
    `final_norm` (pre-norm only), then `readout` (the class token's vector or the mean) or for tagging
    `drop_class_token` (readout = "cls"), and `head`.

    Raises:
        ValueError: inputs of another rank; augment for inputs other than images; tagging of images.
    """
    import keras

    from dlbench.models import sequence_layers

    images = not info.vocab and len(info.input_shape) == 3
    tagging = info.task == "tagging"
    if not info.vocab:
        refusals.check_input(accepts(tuple(info.input_shape)))
    if tagging and images:
        raise ValueError(f"tagging gives one output per input position; transformer cannot tag images (input shape "
                         f"{tuple(info.input_shape)}): use a sequence or token dataset")
    # === Layers ===
    inputs, x = sequence_layers.sequence_input(info, hp, hp.key_dim, "transformer")
    if images:
        x = sequence_layers.Patches(hp.patch_size, name="patches")(x)
    if not info.vocab:
        x = _dense(hp, hp.key_dim, "projection")(x)
    if hp.readout == "cls":
        x = sequence_layers.ClassToken(name="class_token")(x)
    if hp.positional == "sinusoidal":
        x = sequence_layers.SinusoidalPositionEncoding(name="position")(x)
    elif hp.positional == "learned":
        x = sequence_layers.LearnedPositionEmbedding(x.shape[1], name="position")(x)
    else:
        x = keras.layers.Identity(name="position")(x)
    x = keras.layers.Dropout(hp.dropout, name="embedding_dropout")(x)
    for i in range(hp.layers):
        x = _encoder_block(x, hp, f"block_{i}")
    if hp.norm_position == "pre":
        x = _norm("final_norm")(x)
    if not tagging:
        x = sequence_layers.readout(x, hp.readout)
    elif hp.readout == "cls":
        x = sequence_layers.DropClassToken(name="drop_class_token")(x)
    outputs = blocks.output_head(x, info, hp)
    # === Functional Model ===
    return keras.Model(inputs, outputs, name="transformer")
