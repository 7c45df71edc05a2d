"""Linear classifiers: softmax (multinomial logistic) regression and the multi-class perceptron.

Both flatten any input shape and apply one Dense layer (no hidden layer). They differ only in the output and the
loss: `logistic` outputs softmax probabilities trained with cross-entropy (the classification default);
`perceptron` outputs raw class scores trained with a multi-class hinge loss (`losses.MulticlassHinge`, on the
integer labels). The predicted class is the argmax of either output, so both report `accuracy` and a spec compares
them on one scale.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import pydantic

from dlbench.models.blocks import Initializer, initializer

LOGISTIC_DESCRIPTION = ("Logistic (scalable dlbench builder): softmax regression, flatten -> Dense(classes, "
                        "softmax), cross-entropy; no hidden layer")
PERCEPTRON_DESCRIPTION = ("Perceptron (scalable dlbench builder): flatten -> one linear layer of class scores, "
                          "multi-class hinge loss (Crammer-Singer or Weston-Watkins; margin 0 = perceptron rule)")

Hinge = Literal["crammer_singer", "weston_watkins"]


@dataclasses.dataclass(frozen=True)
class LogisticHParams:
    init: Initializer = "glorot_uniform"


@dataclasses.dataclass(frozen=True)
class PerceptronHParams:
    # crammer_singer: only the highest-scoring wrong class is penalised; weston_watkins: every wrong class within
    # the margin. margin 1.0 is the SVM hinge, 0.0 the perceptron criterion.
    hinge: Hinge = "crammer_singer"
    margin: Annotated[float, pydantic.Field(ge=0.0)] = 1.0
    init: Initializer = "glorot_uniform"


def _linear(info, init: str, output_activation: str | None, name: str) -> "keras.Model":  # noqa: F821
    import keras

    # === Layers ===
    inputs = keras.Input(shape=tuple(info.input_shape), name="inputs")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(info.input_shape) > 1 else inputs
    outputs = keras.layers.Dense(info.num_classes, activation=output_activation, kernel_initializer=initializer(init),
                                 name="head", dtype="float32")(x)  # float32 under mixed precision too
    # === Functional Model ===
    return keras.Model(inputs, outputs, name=name)


def build_logistic(hp: LogisticHParams, info) -> "keras.Model":  # noqa: F821
    """Softmax regression: class probabilities softmax(W x + b)."""
    return _linear(info, hp.init, "softmax", "logistic")


def build_perceptron(hp: PerceptronHParams, info) -> "keras.Model":  # noqa: F821
    """The multi-class perceptron: class scores W x + b (no softmax), trained with `perceptron_loss(hp)`.

    The hinge works on the dataset's integer labels directly (see `losses.multiclass_hinge`), so the trainer's
    classification path is unchanged, and its `accuracy` (argmax of the scores against the label) is the same
    metric the softmax models report.
    """
    return _linear(info, hp.init, None, "perceptron")


def perceptron_loss(hp: PerceptronHParams):
    """The Keras loss the perceptron is compiled with."""
    from dlbench.models.losses import MulticlassHinge

    return MulticlassHinge(margin=hp.margin, kind=hp.hinge)
