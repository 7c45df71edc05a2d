"""VGG: stages of 3x3 convolutions, each stage ending in 2x downsampling, widths doubling per stage.

Simonyan & Zisserman 2015. `stages`, `width` and `convs_per_stage` scale it from a CPU-sized network to VGG-11/16
proportions (e.g. stages = 5, width = 64, convs_per_stage = 2 or 3, dense = 4096, dense_layers = 2).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import pydantic

from dlbench.models import blocks, refusals
from dlbench.models.blocks import GlobalPooling, Pooling

DESCRIPTION = ("VGG (scalable dlbench builder): stages x (convs_per_stage x 3x3 conv -> pool), width doubling per "
               "stage, dense head")


@dataclasses.dataclass(frozen=True)
class HParams(blocks.Switches):
    stages: Annotated[int, pydantic.Field(ge=1, le=6)] = 3
    width: Annotated[int, pydantic.Field(ge=1)] = 16  # filters of the first stage; stage i has width * 2**i
    convs_per_stage: Annotated[int, pydantic.Field(ge=1, le=8)] = 2
    pooling: Pooling = "max"  # "none": the last conv of each stage has stride 2 instead
    global_pooling: GlobalPooling = "flatten"
    dense: Annotated[int, pydantic.Field(ge=1)] = 128  # units of each hidden dense layer
    dense_layers: Annotated[int, pydantic.Field(ge=0, le=4)] = 2


def accepts(input_shape: tuple[int, ...]) -> str | None:
    return refusals.needs_images(input_shape, "vgg")


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the VGG. Layers: `augment`, `stage_<s>_<i>_conv` (+ `_bn`, `_act`, `_dropout`), `stage_<s>_pool`,
    `global_pool`, `hidden_<j>_dense` (+ ...), `head`."""
    import keras

    refusals.check_input(accepts(tuple(info.input_shape)))
    # === Layers ===
    inputs, x = blocks.model_input(info, hp)
    for s in range(hp.stages):
        x = blocks.conv_stage(x, hp.width * 2**s, hp.convs_per_stage, 3, hp.pooling, hp, f"stage_{s}")
    x = blocks.global_pool(x, hp.global_pooling)
    for j in range(hp.dense_layers):
        x = blocks.dense_block(x, hp.dense, hp, f"hidden_{j}")
    outputs = blocks.output_head(x, info, hp)
    # === Functional Model ===
    return keras.Model(inputs, outputs, name="vgg")
