"""Multi-layer perceptron: one builder whose switches are the classic ablations (activation, dropout, BN, init)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import pydantic

from dlbench.models.blocks import Activation, Initializer, activation, initializer

DESCRIPTION = ("MLP: depth x Dense(width) with activation, dropout, batch norm and init switches, softmax head; "
               "optional greedy layer-wise (denoising) autoencoder pretraining")

Pretrain = Literal["none", "ae", "dae"]


@dataclasses.dataclass(frozen=True)
class HParams:
    depth: Annotated[int, pydantic.Field(ge=0, le=64)] = 2
    width: Annotated[int, pydantic.Field(ge=1)] = 128
    activation: Activation = "relu"
    dropout: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.0
    batch_norm: bool = False
    init: Initializer = "glorot_uniform"
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


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the MLP for a dataset.

    Layer names are the same in every arm (`dense_i`, `act_i`, `dropout_i`, `head`): a Dropout layer is always
    present (rate 0.0 is the identity), so arms that differ only in rate have identical graphs.
    """
    import keras

    # === Layers ===
    inputs = keras.Input(shape=info.input_shape, name="inputs")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(info.input_shape) > 1 else inputs
    for i in range(hp.depth):
        x = keras.layers.Dense(hp.width, use_bias=not hp.batch_norm, kernel_initializer=initializer(hp.init),
                               name=f"dense_{i}")(x)
        if hp.batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn_{i}")(x)
        x = activation(hp.activation, f"act_{i}")(x)
        x = keras.layers.Dropout(hp.dropout, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(info.num_classes, activation="softmax", kernel_initializer=initializer(hp.init),
                                 name="head", dtype="float32")(x)  # float32 under mixed precision too
    # === Functional Model ===
    return keras.Model(inputs, outputs, name="mlp")
