"""Recurrent network for sequences (time, features) or tokens: `layers` stacked SimpleRNN, LSTM (Hochreiter &
Schmidhuber 1997) or GRU (Cho et al. 2014) layers, optionally bidirectional, then a readout (the last step or the
mean over time) and the output head; for tagging no readout, one output per position.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import pydantic

from dlbench.models import blocks, refusals
from dlbench.models.blocks import Activation, Initializer
from dlbench.models.refusals import Refused, needs_sequences, refuse, spec_value

DESCRIPTION = ("RNN: layers x SimpleRNN/LSTM/GRU (optionally bidirectional, layer or batch norm and dropout after "
               "each), last-step, mean or all-steps (flatten) readout, dense head; sequences (time, features) or "
               "tokens (embedded); classification, regression or tagging (one output per step)")

Cell = Literal["simple", "lstm", "gru"]
Readout = Literal["last", "mean", "flatten"]


@dataclasses.dataclass(frozen=True)
class HParams(blocks.Switches):
    """The shared switches (`blocks.Switches`) and the recurrent network's own.

    How the switches act here:
      activation: the cell's output activation (the gates keep their sigmoid); leaky_relu is refused (a cell takes
        an activation by name, without a slope), and so negative_slope is too.
      batch_norm: BatchNormalization of each recurrent layer's outputs (`rnn_<i>_bn`). The cell's activation is
        inside the layer, so batch norm can only follow it: bn_position = "after" is refused (it would train the
        same network as "before", which here names that one placement).
      dropout: Dropout of each recurrent layer's outputs (`rnn_<i>_dropout`); the cells' own input dropout is not
        used (one meaning for `dropout` in every family); `recurrent_dropout` drops the recurrent state.
      init, l1, l2, max_norm: the input kernels (recurrent kernels stay orthogonal, unpenalized, unconstrained);
        max_norm per unit of each gate (axis 0). init, l1 and l2 also set the head, as in every family.
      input_noise, input_dropout: on the input features, or for tokens on the embedded vectors.
      augment: refused (it flips and shifts images).
    """

    cell: Cell = "lstm"
    units: Annotated[int, pydantic.Field(ge=1)] = 64  # per direction
    layers: Annotated[int, pydantic.Field(ge=1, le=8)] = 1
    bidirectional: bool = False  # a forward and a backward layer, outputs concatenated (2 * units features)
    # The last step's output (both directions' final states), the mean over time, or every step's output
    # concatenated ("flatten": time x units features, the GRU of Greydanus 2020's MNIST-1D benchmark)
    readout: Readout = "last"
    # LSTM only: forget-gate bias initialised to 1 (Jozefowicz et al. 2015), else 0.
    unit_forget_bias: bool = True
    recurrent_dropout: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.0  # of the recurrent state, per step
    layer_norm: bool = False  # LayerNormalization of each recurrent layer's outputs (`rnn_<i>_norm`)
    embedding_dim: Annotated[int, pydantic.Field(ge=1)] = 32  # token inputs only
    activation: Activation = "tanh"  # Keras's cell default
    init: Initializer = "glorot_uniform"  # Keras's default input kernel init

    def __post_init__(self):
        if self.activation == "leaky_relu":
            raise Refused("activation", "rnn takes its cell activation by name, and leaky_relu's slope cannot be "
                          "passed so; got activation = \"leaky_relu\": use another activation (e.g. \"relu\", \"elu\")")
        refuse(self, "negative_slope", "rnn", "has no leaky_relu (refused as a cell activation), so the slope "
               "changes nothing")
        refuse(self, "bn_position", "rnn", "can only place batch norm after each recurrent layer, whose activation "
               "is inside its cell (one placement, named \"before\")")
        refuse(self, "augment", "rnn", "takes sequences or tokens, and augment flips and shifts images",
               "use augment = \"none\"")
        if not self.unit_forget_bias and self.cell != "lstm":
            raise Refused("unit_forget_bias", f"unit_forget_bias sets the forget-gate bias of LSTM cells; got "
                          f"unit_forget_bias = false with cell = {spec_value(self.cell)}, which has no forget gate: "
                          "leave it true, or use cell = \"lstm\"")
        if self.batch_norm and self.layer_norm:
            raise Refused("batch_norm", "rnn normalizes each recurrent layer's outputs with layer_norm or batch_norm, "
                          "not both; got batch_norm = true and layer_norm = true: pick one")


def accepts(input_shape: tuple[int, ...]) -> str | None:
    """None for sequences (time, features), else why not (token datasets are let through by the registry)."""
    return None if len(input_shape) == 2 else needs_sequences(input_shape, "rnn")


def _cell(hp: HParams, return_sequences: bool, name: str):
    import keras

    common = dict(activation=hp.activation, kernel_initializer=blocks.initializer(hp.init),
                  kernel_regularizer=blocks.regularizer(hp), kernel_constraint=blocks.max_norm(hp, 0),
                  recurrent_dropout=hp.recurrent_dropout, return_sequences=return_sequences, name=name)
    if hp.cell == "lstm":
        return keras.layers.LSTM(hp.units, unit_forget_bias=hp.unit_forget_bias, **common)
    if hp.cell == "gru":
        return keras.layers.GRU(hp.units, **common)
    if hp.cell == "simple":
        return keras.layers.SimpleRNN(hp.units, **common)
    raise ValueError(f"`cell` must be one of simple, lstm, gru. Received cell={hp.cell}")


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the recurrent network.

    Layers: `inputs`, then `embedding`, `input_noise`, `input_dropout` (tokens) or `augment`, `input_noise`,
    `input_dropout` (sequences); per recurrent layer i: `rnn_<i>` (a Bidirectional wrapper when bidirectional),
    `rnn_<i>_norm` (layer_norm) or `rnn_<i>_bn` (batch_norm), `rnn_<i>_dropout` (always, rate 0 is the identity);
    then `readout` (not for tagging) and `head`. Every layer returns its whole sequence except, with readout =
    "last", the last one (for tagging none), which returns its final output: for a bidirectional layer, the
    forward direction's after the last step and the backward direction's after the first. `readout` is then the
    identity, present so that readout arms share their layer names.
    """
    import keras

    from dlbench.models import sequence_layers

    if not info.vocab:
        refusals.check_input(accepts(tuple(info.input_shape)))
    tagging = info.task == "tagging"
    # === Layers ===
    inputs, x = sequence_layers.sequence_input(info, hp, hp.embedding_dim, "rnn")
    for i in range(hp.layers):
        name = f"rnn_{i}"
        sequences = tagging or hp.readout != "last" or i < hp.layers - 1
        if hp.bidirectional:
            x = keras.layers.Bidirectional(_cell(hp, sequences, f"{name}_cell"), name=name)(x)
        else:
            x = _cell(hp, sequences, name)(x)
        if hp.layer_norm:
            x = keras.layers.LayerNormalization(name=f"{name}_norm")(x)
        if hp.batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
        x = keras.layers.Dropout(hp.dropout, name=f"{name}_dropout")(x)
    if not tagging:
        x = (keras.layers.Identity(name="readout")(x) if hp.readout == "last"
             else sequence_layers.readout(x, hp.readout))
    outputs = blocks.output_head(x, info, hp)
    # === Functional Model ===
    return keras.Model(inputs, outputs, name="rnn")
