"""The full-size originals from keras.applications, untrained (weights=None), sized to the dataset.

Built with the data's input shape and number of classes, with their own softmax top. They are the published
architectures at full size (ResNet-50: 25.6M parameters at 1000 classes) for a GPU, the references beside the
scalable dlbench builders (`resnet`, `mobilenet`, `inception`). keras.applications refuses small images:
`accepts` says so before anything runs, naming the minimum size and the dataset option `image_size`.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import pydantic

from dlbench.models import blocks, refusals

# Minimum image side each keras.applications constructor accepts (its `min_size`).
MIN_SIZE = {"resnet50": 32, "mobilenet_v2": 32, "inception_v3": 75}

RESNET50_DESCRIPTION = "ResNet-50 (keras.applications original, weights=None): bottleneck ResNet, images >= 32x32"
MOBILENET_V2_DESCRIPTION = ("MobileNetV2 (keras.applications original, weights=None): inverted residuals, alpha "
                            "width multiplier, images >= 32x32")
INCEPTION_V3_DESCRIPTION = "Inception-v3 (keras.applications original, weights=None): images >= 75x75"


@dataclasses.dataclass(frozen=True)
class ResNet50HParams:
    pass


@dataclasses.dataclass(frozen=True)
class MobileNetV2HParams:
    alpha: Annotated[float, pydantic.Field(gt=0.0, le=4.0)] = 1.0  # width multiplier


@dataclasses.dataclass(frozen=True)
class InceptionV3HParams:
    pass


def accepts_resnet50(input_shape: tuple[int, ...]) -> str | None:
    return refusals.needs_images(input_shape, "resnet50 (keras.applications.ResNet50)", MIN_SIZE["resnet50"])


def accepts_mobilenet_v2(input_shape: tuple[int, ...]) -> str | None:
    return refusals.needs_images(input_shape, "mobilenet_v2 (keras.applications.MobileNetV2)", MIN_SIZE["mobilenet_v2"])


def accepts_inception_v3(input_shape: tuple[int, ...]) -> str | None:
    return refusals.needs_images(input_shape, "inception_v3 (keras.applications.InceptionV3)", MIN_SIZE["inception_v3"])


def build_resnet50(hp: ResNet50HParams, info) -> "keras.Model":  # noqa: F821
    import keras

    refusals.check_input(accepts_resnet50(tuple(info.input_shape)))
    return keras.applications.ResNet50(weights=None, input_shape=tuple(info.input_shape), classes=info.num_classes)


def build_mobilenet_v2(hp: MobileNetV2HParams, info) -> "keras.Model":  # noqa: F821
    import keras

    refusals.check_input(accepts_mobilenet_v2(tuple(info.input_shape)))
    return keras.applications.MobileNetV2(weights=None, alpha=hp.alpha, input_shape=tuple(info.input_shape),
                                          classes=info.num_classes)


def build_inception_v3(hp: InceptionV3HParams, info) -> "keras.Model":  # noqa: F821
    import keras

    refusals.check_input(accepts_inception_v3(tuple(info.input_shape)))
    return keras.applications.InceptionV3(weights=None, input_shape=tuple(info.input_shape), classes=info.num_classes)
