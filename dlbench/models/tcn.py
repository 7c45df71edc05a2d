"""Temporal convolutional network (Bai, Kolter & Koltun 2018) for sequences (time, features) or tokens.

`levels` residual blocks; block i has two causal Conv1D of dilation 2**i, each followed by (batch norm,)
activation and dropout, a 1x1 convolution on the skip path when the channel counts differ, the Add, then the
activation. The output at step t reads only inputs at steps <= t, over a receptive field of
1 + 2 * (kernel_size - 1) * (2**levels - 1) steps (`receptive_field`). A readout (the last step or the mean over
time) and the output head follow; for tagging no readout, one output per position.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import pydantic

from dlbench.models import blocks, refusals
from dlbench.models.refusals import needs_sequences, refuse

DESCRIPTION = ("TCN: levels x residual block of two causal dilated Conv1D (dilation 2**level; receptive field "
               "1 + 2 * (kernel_size - 1) * (2**levels - 1) steps), last-step or mean readout, dense head; "
               "sequences (time, features) or tokens (embedded); classification, regression or tagging")


@dataclasses.dataclass(frozen=True)
class HParams(blocks.Switches):
    """The shared switches (`blocks.Switches`) and the TCN's own.

    The switches act as in the convolutional families: activation (and negative_slope with leaky_relu), batch
    norm placed by bn_position, dropout after each convolution's activation (and BN), init, l1, l2 and max_norm
    (per filter) on every convolution kernel (init, l1 and l2 on the head too), input_noise and input_dropout on
    the input features (tokens: on the embedded vectors). augment is refused (it flips and shifts images).
    Batch norm is causal at inference (moving statistics, one affine map per channel); while training its batch
    statistics are taken over all steps, as in any BN network over sequences.
    """

    filters: Annotated[int, pydantic.Field(ge=1)] = 32  # of every convolution
    kernel_size: Annotated[int, pydantic.Field(ge=2, le=15)] = 3
    levels: Annotated[int, pydantic.Field(ge=1, le=12)] = 4  # residual blocks; block i has dilation 2**i
    readout: Literal["last", "mean"] = "last"  # the last step (which sees the receptive field) or the mean over time
    embedding_dim: Annotated[int, pydantic.Field(ge=1)] = 32  # token inputs only

    def __post_init__(self):
        refuse(self, "augment", "tcn", "takes sequences or tokens, and augment flips and shifts images",
               "use augment = \"none\"")


def receptive_field(hp: HParams) -> int:
    """Steps the output at one position can read: 1 + 2 * (kernel_size - 1) * (2**levels - 1) (two convolutions
    of dilation 2**i in block i, each widening the field by (kernel_size - 1) * 2**i)."""
    return 1 + 2 * (hp.kernel_size - 1) * (2**hp.levels - 1)


def accepts(input_shape: tuple[int, ...]) -> str | None:
    """None for sequences (time, features), else why not (token datasets are let through by the registry)."""
    return None if len(input_shape) == 2 else needs_sequences(input_shape, "tcn")


def _causal_block(x, hp: HParams, dilation: int, name: str):
    """Causal dilated Conv1D `<name>` -> `<name>_bn` -> `<name>_act` -> `<name>_dropout` (bn_position "after":
    conv -> act -> bn -> dropout), named and switched like `blocks.conv_block`."""
    import keras

    bn_before = hp.batch_norm and hp.bn_position == "before"
    x = keras.layers.Conv1D(hp.filters, hp.kernel_size, padding="causal", dilation_rate=dilation,
                            use_bias=not bn_before, kernel_initializer=blocks.initializer(hp.init),
                            kernel_regularizer=blocks.regularizer(hp), kernel_constraint=blocks.max_norm(hp, 1),
                            name=name)(x)
    if bn_before:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    x = blocks.nonlinearity(x, hp, name)
    return keras.layers.Dropout(hp.dropout, name=f"{name}_dropout")(x)


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the TCN.

    Layers: the input stem (`embedding`, `input_noise`, `input_dropout` for tokens; `augment`, `input_noise`,
    `input_dropout` for sequences); per level i: `level_<i>_conv_<j>` for j = 0, 1 (+ `_bn`, `_act`, `_dropout`),
    `level_<i>_skip` (a 1x1 Conv1D, only where the input has other than `filters` channels: level 0, unless the
    inputs have that many), `level_<i>_add`, `level_<i>_act`; then `readout` (not for tagging) and `head`.
    """
    import keras

    from dlbench.models import sequence_layers

    if not info.vocab:
        refusals.check_input(accepts(tuple(info.input_shape)))
    # === Layers ===
    inputs, x = sequence_layers.sequence_input(info, hp, hp.embedding_dim, "tcn")
    for i in range(hp.levels):
        name = f"level_{i}"
        skip = x
        for j in range(2):
            x = _causal_block(x, hp, 2**i, f"{name}_conv_{j}")
        if skip.shape[-1] != hp.filters:
            skip = keras.layers.Conv1D(hp.filters, 1, kernel_initializer=blocks.initializer(hp.init),
                                       kernel_regularizer=blocks.regularizer(hp), name=f"{name}_skip")(skip)
        x = keras.layers.Add(name=f"{name}_add")([x, skip])
        x = blocks.activation(hp.activation, f"{name}_act", hp.negative_slope)(x)
    if info.task != "tagging":
        x = sequence_layers.readout(x, hp.readout)
    outputs = blocks.output_head(x, info, hp)
    # === Functional Model ===
    return keras.Model(inputs, outputs, name="tcn")
