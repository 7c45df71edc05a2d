"""CIFAR-style ResNet of depth 6n+2, residual or plain (He et al. 2016, section 4.2).

A 3x3 stem conv with 16*width filters, then 3 stages of n basic blocks (two 3x3 convs) with 16, 32 and 64 times
`width` filters, the first block of stages 2 and 3 downsampling with stride 2; global average pooling and the
softmax head. Depth counts the stem, the 6n block convs and the head: 20, 32, 44, 56, 110 are the paper's.

`residual = False` builds the same network without the shortcuts: no Add layers and no projection convs, the
"plain" networks the paper compares against. Where a block changes the shape, the residual shortcut is a strided
1x1 projection conv (+ BN), the paper's option B (its CIFAR runs use the parameter-free option A).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import pydantic

from dlbench.models import blocks, refusals

DESCRIPTION = ("ResNet (scalable dlbench builder): CIFAR-style depth 6n+2, 3 stages of basic blocks with "
               "16/32/64 x width filters, residual or plain (residual = false)")


@dataclasses.dataclass(frozen=True)
class HParams(blocks.Switches):
    depth: Annotated[int, pydantic.Field(ge=8, le=1202)] = 20  # 6n + 2
    width: Annotated[int, pydantic.Field(ge=1, le=16)] = 1  # filter multiplier (wide ResNets use more)
    residual: bool = True
    batch_norm: bool = True

    def __post_init__(self):
        if (self.depth - 2) % 6:
            raise ValueError(f"resnet depth must be 6n+2 (8, 14, 20, 26, 32, 44, 56, 110, ...); got depth = "
                             f"{self.depth} (to search it, use a range from a 6n+2 value with step = 6)")

    @property
    def blocks_per_stage(self) -> int:
        return (self.depth - 2) // 6


def accepts(input_shape: tuple[int, ...]) -> str | None:
    return refusals.needs_images(input_shape, "resnet")


def basic_block(x, filters: int, strides: int, hp: HParams, name: str):
    """Two 3x3 conv blocks; with hp.residual the input (projected when the shape changes) is added before the
    last activation. Layers `<name>_a_*`, `<name>_b_*`, `<name>_proj_*`, `<name>_add`, `<name>_out_act`.

    With batch_norm and bn_position = "after", BN follows each activation, as in the plain blocks: `<name>_a_bn`
    after the first conv's activation, and the second conv and the projection (whose activation is the one after
    the Add) keep their biases and are normalized together, once, by `<name>_out_bn` after `<name>_out_act`.
    """
    import keras

    y = blocks.conv_block(x, filters, 3, hp, f"{name}_a", strides=strides)
    y = blocks.conv_block(y, filters, 3, hp, f"{name}_b", activate=False)
    if hp.residual:
        shortcut = x
        if strides != 1 or x.shape[-1] != filters:
            shortcut = blocks.conv_block(x, filters, 1, hp, f"{name}_proj", strides=strides, activate=False)
        y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return blocks.nonlinearity(y, hp, f"{name}_out")


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the ResNet. Blocks are named `stage_<s>_block_<b>` (see `basic_block`)."""
    import keras

    refusals.check_input(accepts(tuple(info.input_shape)))
    # === Layers ===
    inputs, x = blocks.model_input(info, hp)
    x = blocks.conv_block(x, 16 * hp.width, 3, hp, "stem")
    for s in range(3):
        for b in range(hp.blocks_per_stage):
            strides = 2 if s > 0 and b == 0 else 1
            x = basic_block(x, 16 * 2**s * hp.width, strides, hp, f"stage_{s}_block_{b}")
    x = blocks.global_pool(x, "global_average")
    outputs = blocks.output_head(x, info, hp)
    # === Functional Model ===
    return keras.Model(inputs, outputs, name="resnet")
