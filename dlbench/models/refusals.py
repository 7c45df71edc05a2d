"""What a builder refuses, said with the fix: inputs it cannot take (`accepts` messages, naming the dataset option
that fixes them) and shared switches it cannot honour (`Refused`, naming the field, so a spec error points at it).

Imports no Keras: the registry and the spec checks call these without building anything.
"""

from __future__ import annotations

import json
from typing import Any

from dlbench.models.blocks import Switches


def needs_images(input_shape: tuple[int, ...], model: str, min_size: int = 1) -> str | None:
    """Why `model` cannot take inputs of `input_shape` (it needs (height, width, channels) images of at least
    `min_size` pixels a side), or None when it can. The message names the dataset option that fixes it."""
    if len(input_shape) != 3:
        return (f"{model} needs images of shape (height, width, channels); got inputs of shape {tuple(input_shape)}: "
                "use a dataset of images (digits: set the dataset option shape = \"image\")")
    if min(input_shape[:2]) < min_size:
        return (f"{model} needs images of at least {min_size}x{min_size} pixels; got {input_shape[0]}x{input_shape[1]} "
                f"(input shape {tuple(input_shape)}): set the dataset option `image_size` (e.g. image_size = "
                f"{min_size}) to resize them")
    return None


def halving_images(setting: str, blocks: int, input_shape: tuple[int, ...], instead: str) -> str | None:
    """Why a `setting` (e.g. 'encoder = "conv"') that halves images `blocks` times (or grows them from that size)
    cannot take inputs of `input_shape`, or None: it needs images whose sides divide by 2^blocks. `instead` names
    the dense alternative."""
    if len(input_shape) != 3:
        return (f"{setting} needs images (height, width, channels); got inputs of shape {tuple(input_shape)} (for "
                f"digits and mnist5k set the dataset option shape = \"image\", or use {instead})")
    if any(s % 2 ** blocks for s in input_shape[:2]):
        return (f"{setting} with {blocks} blocks halves {input_shape[0]}x{input_shape[1]} images {blocks} times: each "
                f"side must be a multiple of {2 ** blocks}; use fewer blocks")
    return None


def check_input(message: str | None) -> None:
    """Raise the ValueError of an `accepts` check at build time (spec checks report it before anything runs)."""
    if message is not None:
        raise ValueError(message)


class Refused(ValueError):
    """A setting a builder cannot honour (a shared switch that would change nothing, or values that do not go
    together); `field` names the one to change, so a spec error can point at it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def spec_value(value: Any) -> str:
    """A value as a spec (TOML) writes it: true, "flip", 0.2."""
    return json.dumps(value)


def refuse(hp: Any, field: str, model: str, why: str, fix: str | None = None) -> None:
    """Raise `Refused` when `hp.<field>` differs from the Switches default: "<model> <why>; got <field> = <value>:
    <fix>" (by default: leave it at its default)."""
    value, default = getattr(hp, field), getattr(Switches, field)
    if value != default:
        fix = fix or f"leave {field} = {spec_value(default)}"
        raise Refused(field, f"{model} {why}; got {field} = {spec_value(value)}: {fix}")


def needs_sequences(input_shape: tuple[int, ...], model: str) -> str:
    """Why `model` (which takes sequences (time, features) and tokens) cannot take inputs of `input_shape`,
    naming the dataset option that fixes it."""
    return (f"{model} needs sequences (time, features) or tokens; got inputs of shape {tuple(input_shape)}: use a "
            "sequence dataset, or the digit data with shape = \"rows\" or \"pixels\"")
