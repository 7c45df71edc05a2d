"""Multi-layer perceptron: one builder whose switches are the classic ablations (activation, dropout, BN, init, ...),
taken from `blocks.Switches` and built by the shared blocks like every other family's hidden layers."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, NamedTuple

import pydantic

from dlbench.models import blocks
from dlbench.models.blocks import Initializer

DESCRIPTION = ("MLP: depth x Dense(width) with the shared switches (activation, dropout, batch norm, init, L1/L2, "
               "max-norm, input noise), softmax head; optional greedy layer-wise (denoising) autoencoder "
               "pretraining")

Pretrain = Literal["none", "ae", "dae"]


@dataclasses.dataclass(frozen=True)
class HParams(blocks.Switches):
    """The catalogue switches (`blocks.Switches`) plus the MLP's size and its pretraining."""

    depth: Annotated[int, pydantic.Field(ge=0, le=64)] = 2
    width: Annotated[int, pydantic.Field(ge=1)] = 128
    init: Initializer = "glorot_uniform"  # the MLP's default since its first results (the switches' is he_normal)
    # Greedy layer-wise pretraining of the hidden layers before supervised training (dlbench.pretrain): "ae" trains
    # one autoencoder per hidden layer, "dae" one denoising autoencoder (masking noise). The pretrain_* values
    # are used only when pretrain is not "none"; pretrain_noise only by "dae".
    pretrain: Pretrain = "none"
    pretrain_epochs: Annotated[int, pydantic.Field(ge=1)] = 10  # per hidden layer
    pretrain_learning_rate: Annotated[float, pydantic.Field(gt=0.0)] = 0.1
    pretrain_noise: Annotated[float, pydantic.Field(gt=0.0, lt=1.0)] = 0.25  # fraction of inputs masked ("dae")

    def __post_init__(self):
        if self.pretrain != "none" and self.depth == 0:
            raise ValueError(f"pretrain = {self.pretrain!r} needs hidden layers to pretrain; got depth = 0")
        if self.pretrain != "none" and self.batch_norm:
            raise ValueError(f"pretrain = {self.pretrain!r} cannot be combined with batch_norm = true (the "
                             "pretrained encoder weights would be rescaled by untrained batch statistics)")
        # The pretraining autoencoders (models.autoencoder) have no negative_slope: their leaky_relu has the default.
        if self.pretrain != "none" and self.activation == "leaky_relu" and self.negative_slope != blocks.LEAKY_SLOPE:
            raise ValueError(f"pretrain = {self.pretrain!r} trains leaky_relu autoencoders with the default slope "
                             f"{blocks.LEAKY_SLOPE}; got negative_slope = {self.negative_slope}, which the pretrained "
                             "layers would not have been trained with")
        if self.max_norm > 0 and self.depth == 0:
            raise ValueError(f"max_norm constrains hidden layers; this mlp has depth = 0, so it has none (got "
                             f"max_norm = {self.max_norm})")


class Hidden(NamedTuple):
    """One hidden layer of a built MLP: its Dense layer and the block's last layer, whose output the next layer
    reads (at inference the activations: the block's dropout is then the identity)."""

    dense: Any  # keras.layers.Dense
    last: Any  # keras.layers.Layer


def _hidden_name(i: int) -> str:
    return f"hidden_{i}"


def hidden_layers(model, depth: int) -> list[Hidden]:
    """The hidden layers of an MLP built by `build` with `depth` hidden layers, bottom up.

    Whoever works on them (pretraining copies weights into `dense` and reads `output`) takes them from here, so
    the layer names stay the builder's business.
    """
    return [Hidden(model.get_layer(f"{_hidden_name(i)}_dense"), model.get_layer(f"{_hidden_name(i)}_dropout"))
            for i in range(depth)]


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the MLP for a dataset.

    Layers: `inputs`, `augment`, `input_noise`, `input_dropout` (`blocks.model_input`), `flatten` for inputs of
    rank > 1, then per hidden layer i the `blocks.dense_block` layers `hidden_<i>_dense`, `hidden_<i>_bn` (with
    batch_norm), `hidden_<i>_act`, `hidden_<i>_dropout`, and the softmax `head`. The names are the same in every
    arm: the Dropout and input layers are always present (rate 0.0 is the identity). The layers are created in
    that order (only the switched-on input noise and dropouts draw seeds), so a seed fixes the initial weights.
    """
    import keras

    # === Layers ===
    inputs, x = blocks.model_input(info, hp)  # augmentation needs images; flat inputs refuse it at build time
    if len(info.input_shape) > 1:
        x = keras.layers.Flatten(name="flatten")(x)
    for i in range(hp.depth):
        x = blocks.dense_block(x, hp.width, hp, _hidden_name(i))
    outputs = blocks.output_head(x, info, hp)
    # === Functional Model ===
    return keras.Model(inputs, outputs, name="mlp")
