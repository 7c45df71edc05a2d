"""Custom Keras losses and metrics, on integer labels, in keras.ops only: the multi-class hinge of the perceptron,
the classifier losses of the `loss` switch, and the masked loss and accuracies of tagging tasks (one label per
position, IGNORE where a position has no target).

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


# === Tagging (one label per position) ===

IGNORE = -1  # data.IGNORE: a position without a target


def masked_sparse_categorical_crossentropy(y_true, y_pred):
    """Per example, the mean cross-entropy over its targeted positions (y_true != IGNORE); an example without any
    targeted position contributes 0.

    Args:
        y_true: (batch, time) integer classes, or IGNORE.
        y_pred: (batch, time, classes) probabilities.
    """
    y_true = ops.cast(y_true, "int32")
    valid = ops.cast(ops.greater_equal(y_true, 0), y_pred.dtype)
    ce = keras.losses.sparse_categorical_crossentropy(ops.maximum(y_true, 0), y_pred)  # (batch, time)
    return ops.sum(ce * valid, axis=-1) / ops.maximum(ops.sum(valid, axis=-1), 1.0)


@keras.saving.register_keras_serializable(package="dlbench")
class TaggingAccuracy(keras.metrics.Metric):
    """Accuracy over the targeted positions of a tagging task (y_true != IGNORE), pooled over every example seen:
    with whole_sequence=False the fraction of targeted positions predicted right (token accuracy); with True the
    fraction of examples whose targeted positions are all right (sequence accuracy)."""

    def __init__(self, name: str = "accuracy", whole_sequence: bool = False, **kwargs):
        super().__init__(name=name, **kwargs)
        self.whole_sequence = whole_sequence
        self.right = self.add_variable(shape=(), initializer="zeros", name="right")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        valid = ops.greater_equal(y_true, 0)
        hit = ops.logical_and(valid, ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true))
        if self.whole_sequence:  # no targeted position missed
            missed = ops.logical_and(valid, ops.logical_not(hit))
            right = ops.sum(ops.cast(ops.logical_not(ops.any(missed, axis=-1)), "float32"))
            total = ops.cast(ops.shape(y_true)[0], "float32")
        else:
            right = ops.sum(ops.cast(hit, "float32"))
            total = ops.sum(ops.cast(valid, "float32"))
        self.right.assign_add(right)
        self.total.assign_add(total)

    def result(self):
        return self.right / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.right.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "whole_sequence": self.whole_sequence}
