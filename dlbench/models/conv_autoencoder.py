"""Convolutional autoencoder: strided-convolution encoder, mirrored decoder that upsamples by transposed
convolutions or by resize-convolution (nearest-neighbour upsampling, then a convolution; Odena et al. 2016).

Trained to reconstruct its inputs (task `reconstruction`, metric `reconstruction_error` = MSE), like the dense
`autoencoder`; `noise` makes it denoising. Each of `blocks` encoder blocks halves the height and width
(Conv2D with stride 2, rounding up), a 1x1 convolution makes the code (`code` channels), and each decoder block doubles them
back: `upsampling = "transposed"` with a Conv2DTranspose of stride 2, whose kernel (3x3 by default) overlaps
unevenly between neighbouring outputs (the checkerboard pattern Odena et al. describe), or `"resize_conv"` with
UpSampling2D (nearest) and a stride-1 Conv2D, which weights every output alike.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import pydantic

from dlbench.models.autoencoder import Noise, check_output_and_noise
from dlbench.models.blocks import Activation, Initializer, activation, initializer

DESCRIPTION = ("Convolutional autoencoder: blocks x strided Conv2D encoder, 1x1 code, mirrored decoder upsampling "
               "by transposed convolutions or resize-convolution (upsampling = transposed | resize_conv); metric "
               "reconstruction_error")

Upsampling = Literal["transposed", "resize_conv"]


@dataclasses.dataclass(frozen=True)
class HParams:
    blocks: Annotated[int, pydantic.Field(ge=1, le=6)] = 2  # encoder (and decoder) blocks; each halves H and W
    filters: Annotated[int, pydantic.Field(ge=1)] = 16  # channels of the first block; doubled at each next block
    kernel_size: Annotated[int, pydantic.Field(ge=1, le=7)] = 3
    code: Annotated[int, pydantic.Field(ge=1)] = 8  # channels of the code (at 1 / 2**blocks of the input's size)
    upsampling: Upsampling = "transposed"
    activation: Activation = "relu"
    output_activation: Literal["sigmoid", "linear"] = "sigmoid"  # sigmoid for inputs in [0, 1]
    loss: Literal["mse", "binary_crossentropy"] = "mse"
    noise: Noise = "none"  # input corruption while training: a denoising autoencoder
    noise_level: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.25
    init: Initializer = "he_normal"

    def __post_init__(self):
        check_output_and_noise(self)


def accepts(input_shape: tuple[int, ...]) -> str | None:
    """Images only (height x width x channels)."""
    if len(input_shape) != 3:
        return (f"needs images (height, width, channels); got inputs of shape {input_shape} (for digits and mnist5k "
                "set the dataset option shape = \"image\")")
    return None


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the convolutional autoencoder for a dataset's images (labels are not used).

    Layer names: `corrupt` (the identity without noise); `encoder_<i>` (stride-2 Conv2D) and `encoder_<i>_act`;
    `code` (1x1 Conv2D) and `code_act`, the representation; `decoder_<i>` (Conv2DTranspose, or `decoder_<i>_resize`
    then the Conv2D `decoder_<i>`) and `decoder_<i>_act`, decoder_i undoing encoder block i; `crop` where the
    halvings rounded up (28 -> 14 -> 7 -> 4 decodes to 32: the 2-pixel border of each side is cut); `reconstruction`
    (a 3x3 convolution to the input's channels, float32 under mixed precision).
    """
    import keras

    from dlbench.models import layers

    shape = tuple(info.input_shape)
    reason = accepts(shape)
    if reason:
        raise ValueError(reason)

    def conv() -> dict:  # one initializer per layer
        return dict(kernel_size=hp.kernel_size, padding="same", kernel_initializer=initializer(hp.init))

    widths = [hp.filters * 2 ** i for i in range(hp.blocks)]

    # === Layers ===
    inputs = keras.Input(shape=shape, name="inputs")
    x = layers.corruption(hp.noise, hp.noise_level, name="corrupt")(inputs)
    for i, width in enumerate(widths):
        x = keras.layers.Conv2D(width, strides=2, name=f"encoder_{i}", **conv())(x)
        x = activation(hp.activation, f"encoder_{i}_act")(x)
    x = keras.layers.Conv2D(hp.code, 1, kernel_initializer=initializer(hp.init), name="code")(x)
    x = activation(hp.activation, "code_act")(x)
    for i in reversed(range(hp.blocks)):
        if hp.upsampling == "transposed":
            x = keras.layers.Conv2DTranspose(widths[i], strides=2, name=f"decoder_{i}", **conv())(x)
        else:
            x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"decoder_{i}_resize")(x)
            x = keras.layers.Conv2D(widths[i], name=f"decoder_{i}", **conv())(x)
        x = activation(hp.activation, f"decoder_{i}_act")(x)
    extra = [size * 2 ** hp.blocks - target for size, target in zip(_encoded(shape[:2], hp.blocks), shape[:2])]
    if any(extra):
        x = keras.layers.Cropping2D(tuple((e // 2, e - e // 2) for e in extra), name="crop")(x)
    outputs = keras.layers.Conv2D(shape[-1], 3, padding="same", activation=hp.output_activation,
                                  kernel_initializer="glorot_uniform", name="reconstruction", dtype="float32")(x)
    # === Functional Model ===
    return keras.Model(inputs, outputs, name="conv_autoencoder")


def _encoded(size: tuple[int, ...], blocks: int) -> list[int]:
    """Height and width after `blocks` stride-2 "same" convolutions (each rounds up)."""
    out = list(size)
    for _ in range(blocks):
        out = [-(-s // 2) for s in out]
    return out
