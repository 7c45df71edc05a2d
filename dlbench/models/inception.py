"""Inception (GoogLeNet): modules of parallel 1x1, 3x3, 5x5 and pooling branches, concatenated (Szegedy et al. 2015).

A 3x3 stem conv (3 * width filters, as GoogLeNet's 192 before its first 64-wide module), then `stages` stages of
`modules_per_stage` Inception modules with a 2x max pooling between stages; global average pooling and the softmax
head. A module of width w (w = width * 2**stage) has the branches of GoogLeNet's module 3a at w = 64:
  1x1 conv (w) | 1x1 (3w/2) -> 3x3 (2w) | 1x1 (w/4) -> 5x5 (w/2) | 3x3 max pool -> 1x1 (w/2),
concatenated along the channels (4w outputs). `reductions = False` builds the paper's "naive" module (Figure 2a):
the 3x3 and 5x5 convs read the module input directly and the pooling branch has no 1x1 projection, so the module
outputs 3.5w plus its input's channels.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import pydantic

from dlbench.models import blocks, refusals

DESCRIPTION = ("Inception (scalable dlbench builder): GoogLeNet modules (1x1 | 1x1->3x3 | 1x1->5x5 | pool->1x1, "
               "concatenated), stages x modules, 1x1 reductions on or off")


@dataclasses.dataclass(frozen=True)
class HParams(blocks.Switches):
    stages: Annotated[int, pydantic.Field(ge=1, le=4)] = 2
    modules_per_stage: Annotated[int, pydantic.Field(ge=1, le=8)] = 2
    width: Annotated[int, pydantic.Field(ge=4)] = 16  # w of the first stage's modules (GoogLeNet's 3a: 64)
    reductions: bool = True  # the 1x1 convs before the 3x3 and 5x5 convs and after the pooling branch
    batch_norm: bool = True


def accepts(input_shape: tuple[int, ...]) -> str | None:
    return refusals.needs_images(input_shape, "inception")


def branch_widths(w: int) -> dict[str, int]:
    """Filters of each branch of a module of width w (GoogLeNet's 3a at w = 64: 64, 96, 128, 16, 32, 32)."""
    return {"1x1": w, "3x3_reduce": max(1, 3 * w // 2), "3x3": 2 * w, "5x5_reduce": max(1, w // 4),
            "5x5": max(1, w // 2), "pool_proj": max(1, w // 2)}


def inception_module(x, w: int, hp: HParams, name: str):
    """One module; layers `<name>_1x1_*`, `<name>_3x3_reduce_*`, `<name>_3x3_*`, ..., `<name>_pool`, `<name>_concat`."""
    import keras

    f = branch_widths(w)
    b1 = blocks.conv_block(x, f["1x1"], 1, hp, f"{name}_1x1")
    b3 = blocks.conv_block(x, f["3x3_reduce"], 1, hp, f"{name}_3x3_reduce") if hp.reductions else x
    b3 = blocks.conv_block(b3, f["3x3"], 3, hp, f"{name}_3x3")
    b5 = blocks.conv_block(x, f["5x5_reduce"], 1, hp, f"{name}_5x5_reduce") if hp.reductions else x
    b5 = blocks.conv_block(b5, f["5x5"], 5, hp, f"{name}_5x5")
    bp = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    if hp.reductions:
        bp = blocks.conv_block(bp, f["pool_proj"], 1, hp, f"{name}_pool_proj")
    return keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([b1, b3, b5, bp])


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the Inception network. Modules are named `stage_<s>_module_<m>`, the poolings `stage_<s>_pool`."""
    import keras

    refusals.check_input(accepts(tuple(info.input_shape)))
    # === Layers ===
    inputs, x = blocks.model_input(info, hp)
    x = blocks.conv_block(x, 3 * hp.width, 3, hp, "stem")
    for s in range(hp.stages):
        if s > 0:
            x = blocks.pool(x, "max", f"stage_{s}_pool")
        for m in range(hp.modules_per_stage):
            x = inception_module(x, hp.width * 2**s, hp, f"stage_{s}_module_{m}")
    x = blocks.global_pool(x, "global_average")
    outputs = blocks.output_head(x, info, hp)
    # === Functional Model ===
    return keras.Model(inputs, outputs, name="inception")
