"""MobileNet (v1): depthwise separable convolutions, scaled by a width multiplier (Howard et al. 2017).

A 3x3 stem conv, then the first `blocks` rows of the paper's Table 1: each block a 3x3 depthwise conv (stride 1 or
2) and a 1x1 pointwise conv, each followed by batch norm and the activation; global average pooling and the softmax
head. Every width is int(width_multiplier * the paper's), at least 1. The stem has stride 1 (the paper's stride 2
suits 224x224 inputs, not 32x32 ones).

`separable = False` replaces each depthwise + pointwise pair by one standard 3x3 conv with the same output
channels and stride: the paper's "conv MobileNet" baseline (Table 4).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import pydantic

from dlbench.models import blocks, refusals

DESCRIPTION = ("MobileNet (scalable dlbench builder): depthwise separable blocks (3x3 depthwise + 1x1 conv) with "
               "a width multiplier; separable = false uses standard 3x3 convs")

STEM = 32
# (output channels, stride) of the 13 depthwise separable blocks of MobileNet v1 (Table 1).
TABLE = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
         (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


@dataclasses.dataclass(frozen=True)
class HParams(blocks.Switches):
    width_multiplier: Annotated[float, pydantic.Field(gt=0.0, le=4.0)] = 0.5  # 1.0 is the paper's full width
    blocks: Annotated[int, pydantic.Field(ge=1, le=len(TABLE))] = len(TABLE)  # the first rows of TABLE
    separable: bool = True
    batch_norm: bool = True


def accepts(input_shape: tuple[int, ...]) -> str | None:
    return refusals.needs_images(input_shape, "mobilenet")


def _width(channels: int, multiplier: float) -> int:
    return max(1, int(channels * multiplier))


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the MobileNet. Layers: `stem_*`; per block `block_<i>_dw_*` (depthwise) and `block_<i>_pw_*`
    (pointwise), or `block_<i>_*` (a standard conv) when not separable; `global_pool`, `head`."""
    import keras

    refusals.check_input(accepts(tuple(info.input_shape)))
    # === Layers ===
    inputs, x = blocks.model_input(info, hp)
    x = blocks.conv_block(x, _width(STEM, hp.width_multiplier), 3, hp, "stem")
    for i, (channels, strides) in enumerate(TABLE[:hp.blocks]):
        filters = _width(channels, hp.width_multiplier)
        if hp.separable:
            x = blocks.conv_block(x, filters, 3, hp, f"block_{i}_dw", strides=strides, depthwise=True)
            x = blocks.conv_block(x, filters, 1, hp, f"block_{i}_pw")
        else:
            x = blocks.conv_block(x, filters, 3, hp, f"block_{i}", strides=strides)
    x = blocks.global_pool(x, "global_average")
    outputs = blocks.output_head(x, info, hp)
    # === Functional Model ===
    return keras.Model(inputs, outputs, name="mobilenet")
