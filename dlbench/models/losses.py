"""Custom Keras losses, on integer labels, in keras.ops only: the multi-class hinge of the perceptron, and the
classifier losses of the `loss` switch.

Imported by the registry's loss callables when a run compiles (not by the registry), so `dlbench list` never
loads Keras.
"""

from __future__ import annotations

import keras
from keras import ops

HINGES = ("crammer_singer", "weston_watkins")


def multiclass_hinge(y_true, y_pred, margin: float = 1.0, kind: str = "crammer_singer"):
    """Per-example multi-class hinge loss of class scores `y_pred` against integer labels `y_true`.

    With s the scores and y the label:
      crammer_singer: max(0, margin + max_{j != y} s_j - s_y)  (Crammer & Singer 2001);
      weston_watkins: sum_{j != y} max(0, margin + s_j - s_y)  (Weston & Watkins 1999).
    margin = 1 is the SVM hinge; margin = 0 is the perceptron criterion (zero once every example is classified
    correctly). The labels are the dataset's integer labels, as for sparse categorical cross-entropy: no one-hot
    or +-1 targets are needed.

    Args:
        y_true: integer labels, shape (batch,) or (batch, 1) (any numeric dtype).
        y_pred: unnormalised class scores, shape (batch, classes).

    Returns:
        The loss of each example, shape (batch,).
    """
    labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    truth = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
    true_score = ops.sum(y_pred * truth, axis=-1, keepdims=True)
    # The margin violations of the other classes; the true class's entry is set to 0, which is also the floor.
    violations = ops.relu(margin + y_pred - true_score) * (1.0 - truth)
    if kind == "crammer_singer":
        return ops.max(violations, axis=-1)
    if kind == "weston_watkins":
        return ops.sum(violations, axis=-1)
    raise ValueError(f"`hinge` must be one of {', '.join(HINGES)}. Received hinge={kind}")


@keras.saving.register_keras_serializable(package="dlbench")
class MulticlassHinge(keras.losses.Loss):
    """`multiclass_hinge` as a Keras loss (mean over the batch), for `model.compile(loss=...)`."""

    def __init__(self, margin: float = 1.0, kind: str = "crammer_singer", name: str = "multiclass_hinge", **kwargs):
        super().__init__(name=name, **kwargs)
        if kind not in HINGES:
            raise ValueError(f"`hinge` must be one of {', '.join(HINGES)}. Received hinge={kind}")
        self.margin = margin
        self.kind = kind

    def call(self, y_true, y_pred):
        return multiclass_hinge(y_true, y_pred, self.margin, self.kind)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "kind": self.kind}


CLASSIFIER_LOSSES = ("cross_entropy", "mse", "hinge")


@keras.saving.register_keras_serializable(package="dlbench")
class ClassifierLoss(keras.losses.Loss):
    """The `loss` switch of softmax classifiers (dlbench.recipe), on integer labels and softmax outputs.

    cross_entropy: -sum(t * log p); mse: sum((t - p)^2) over the classes (the Brier score); hinge: the
    Crammer-Singer hinge on log p, which equals the hinge on the logits (log p is the logits minus one constant per
    example, and the hinge only sees differences of scores). t is the one-hot label, smoothed to
    (1 - label_smoothing) * one_hot + label_smoothing / classes.
    """

    def __init__(self, kind: str = "cross_entropy", label_smoothing: float = 0.0, name: str = "classifier_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        if kind not in CLASSIFIER_LOSSES:
            raise ValueError(f"`loss` must be one of {', '.join(CLASSIFIER_LOSSES)}. Received loss={kind}")
        self.kind = kind
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        log_p = ops.log(ops.clip(y_pred, 1e-7, 1.0))
        if self.kind == "hinge":
            return multiclass_hinge(y_true, log_p)
        classes = ops.shape(y_pred)[-1]
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        target = ops.one_hot(labels, classes, dtype="float32")
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / ops.cast(classes, "float32")
        if self.kind == "mse":
            return ops.sum(ops.square(target - y_pred), axis=-1)
        return -ops.sum(target * log_p, axis=-1)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "label_smoothing": self.label_smoothing}
