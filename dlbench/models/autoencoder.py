"""Dense autoencoder: encoder and mirrored decoder of any depth, tied or untied, optionally denoising.

Trained to reconstruct its inputs (task `reconstruction`, metric `reconstruction_error` = MSE). With `noise`, it is
a denoising autoencoder (Vincent et al. 2008, 2010): the inputs are corrupted while training, the targets are the
clean inputs (the trainer passes `x` as both, and the corruption is a layer of the model, so only inputs see it).
With `activation = "linear"`, `output_activation = "linear"`, `loss = "mse"` and `depth = 1`, it spans the same
subspace as PCA with `code` components (Baldi & Hornik 1989; see `dlbench.pretrain.pca_reconstruction_error`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal

import pydantic

from dlbench.models.blocks import Activation, Initializer, activation, initializer

DESCRIPTION = ("Autoencoder: dense encoder (depth x width, then a code layer) and mirrored decoder, tied or "
               "untied, MSE or cross-entropy, optional masking/Gaussian input noise (denoising); metric "
               "reconstruction_error")

Noise = Literal["none", "masking", "gaussian"]


@dataclasses.dataclass(frozen=True)
class HParams:
    depth: Annotated[int, pydantic.Field(ge=1, le=16)] = 1  # encoder layers, the code layer included
    width: Annotated[int, pydantic.Field(ge=1)] = 128  # units of the encoder layers below the code (depth > 1)
    code: Annotated[int, pydantic.Field(ge=1)] = 32  # units of the code layer
    activation: Activation = "sigmoid"  # encoder and decoder hidden layers, the code layer included
    output_activation: Literal["sigmoid", "linear"] = "sigmoid"  # sigmoid for inputs in [0, 1]
    tied: bool = False  # decoder kernels are the transposed encoder kernels (each decoder layer keeps its bias)
    loss: Literal["mse", "binary_crossentropy"] = "mse"  # binary_crossentropy needs outputs in (0, 1)
    noise: Noise = "none"  # input corruption while training: a denoising autoencoder
    noise_level: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.25  # masking fraction or Gaussian std
    init: Initializer = "glorot_uniform"

    def __post_init__(self):
        check_output_and_noise(self)


def check_output_and_noise(hp) -> None:
    """The settings every autoencoder (dense and convolutional) refuses together: a cross-entropy loss on outputs
    that are not probabilities, and a corruption of level 0."""
    if hp.loss == "binary_crossentropy" and hp.output_activation != "sigmoid":
        raise ValueError("loss = \"binary_crossentropy\" needs output_activation = \"sigmoid\" (outputs in (0, 1)); "
                         f"got output_activation = {hp.output_activation!r}")
    if hp.noise != "none" and hp.noise_level == 0.0:
        raise ValueError(f"noise = {hp.noise!r} with noise_level = 0 corrupts nothing; give noise_level > 0 "
                         "or noise = \"none\"")


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the autoencoder for a dataset's inputs (labels are not used)."""
    return build_for_shape(hp, tuple(info.input_shape))


def build_for_shape(hp: HParams, input_shape: tuple[int, ...], name: str = "autoencoder") -> "keras.Model":  # noqa: F821
    """Build the autoencoder for inputs of `input_shape`.

    Layer names: `corrupt` (the identity without noise), `encoder_0 .. encoder_{depth-2}` and `code`, each
    followed by its activation `<name>_act`; then `decoder_{depth-1} .. decoder_1` (decoder_i inverts encoder
    layer i) and `reconstruction` (the output, reshaped back to `input_shape`). `code_act` is the representation.
    """
    import keras

    from dlbench.models import layers

    dim = math.prod(input_shape)
    sizes = [hp.width] * (hp.depth - 1) + [hp.code]
    names = [f"encoder_{i}" for i in range(hp.depth - 1)] + ["code"]

    # === Layers ===
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(input_shape) > 1 else inputs
    x = layers.corruption(hp.noise, hp.noise_level, name="corrupt")(x)
    encoders = []
    for units, layer_name in zip(sizes, names):
        dense = keras.layers.Dense(units, kernel_initializer=initializer(hp.init), name=layer_name)
        x = activation(hp.activation, f"{layer_name}_act")(dense(x))
        encoders.append(dense)
    # The decoder mirrors the encoder: `decoder_i` inverts encoder layer i (i >= 1), `reconstruction` layer 0.
    for i in reversed(range(hp.depth)):
        last = i == 0
        layer_name = "reconstruction" if last else f"decoder_{i}"
        act = hp.output_activation if last else None
        if hp.tied:
            x = layers.TiedDense(encoders[i], activation=act, name=layer_name,
                                 **({"dtype": "float32"} if last else {}))(x)
        else:  # the reconstruction is float32 under mixed precision too
            x = keras.layers.Dense(dim if last else hp.width, activation=act, kernel_initializer=initializer(hp.init),
                                   name=layer_name, **({"dtype": "float32"} if last else {}))(x)
        if not last:
            x = activation(hp.activation, f"{layer_name}_act")(x)
    outputs = keras.layers.Reshape(input_shape, name="unflatten")(x) if len(input_shape) > 1 else x
    # === Functional Model ===
    return keras.Model(inputs, outputs, name=name)
