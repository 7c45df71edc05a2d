"""LeNet-style convolutional network for images (height, width, channels) or sequences (length, channels).

`blocks` x (conv -> 2x downsampling), the filters doubling each block, then flatten or global pooling, an
optional hidden dense layer and the softmax head (LeCun et al. 1998). Conv1D or Conv2D is chosen from the input
rank, so the same builder serves images and 1-D signals.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import pydantic

from dlbench.models import blocks, refusals
from dlbench.models.blocks import GlobalPooling, Pooling

DESCRIPTION = ("CNN (scalable dlbench builder): LeNet-style blocks x (conv -> max/average pool or strided conv), "
               "filters doubling per block, flatten or global pooling, dense head; images or 1-D sequences")


@dataclasses.dataclass(frozen=True)
class HParams(blocks.Switches):
    blocks: Annotated[int, pydantic.Field(ge=1, le=8)] = 2
    filters: Annotated[int, pydantic.Field(ge=1)] = 16  # of the first block; block i has filters * 2**i
    kernel_size: Annotated[int, pydantic.Field(ge=1, le=15)] = 5
    pooling: Pooling = "max"  # "none": the conv of each block has stride 2 instead
    global_pooling: GlobalPooling = "flatten"
    dense: Annotated[int, pydantic.Field(ge=0)] = 128  # units of the hidden dense layer; 0: none


def accepts(input_shape: tuple[int, ...]) -> str | None:
    """None when the inputs are images (height, width, channels) or sequences (length, channels), else why not."""
    if len(input_shape) in (2, 3):
        return None
    return (f"cnn needs images (height, width, channels) or sequences (length, channels); got inputs of shape "
            f"{tuple(input_shape)}: use a dataset of images or sequences (digits: set the dataset option "
            "shape = \"image\")")


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the CNN. Layers: `augment`, `block_<i>_0_conv` (+ `_bn`, `_act`, `_dropout`), `block_<i>_pool`,
    `global_pool`, `hidden_dense` (+ ...) when dense > 0, `head`."""
    import keras

    refusals.check_input(accepts(tuple(info.input_shape)))
    # === Layers ===
    inputs, x = blocks.model_input(info, hp)
    for i in range(hp.blocks):
        x = blocks.conv_stage(x, hp.filters * 2**i, 1, hp.kernel_size, hp.pooling, hp, f"block_{i}")
    x = blocks.global_pool(x, hp.global_pooling)
    if hp.dense:
        x = blocks.dense_block(x, hp.dense, hp, "hidden")
    outputs = blocks.output_head(x, info, hp)
    # === Functional Model ===
    return keras.Model(inputs, outputs, name="cnn")
