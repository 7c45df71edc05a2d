"""The gradient norm of each layer, on a fixed sample of training rows, logged as `grad_norm/<layer>`.

Vanishing gradients in a deep sigmoid network show up as norms that shrink by orders of magnitude from the head
down to the first layers (Glorot & Bengio 2010, Fig. 7). The norm of a layer is the L2 norm of the gradient of
the data loss (regularisation penalties left out) with respect to all of the layer's trainable variables, on the
same `SAMPLE_ROWS` training rows every time (drawn with the run's seed), with the model in training mode (dropout
on, batch norm on batch statistics). The model's other state (batch norm's moving statistics, random-number
generators) is restored afterwards, so logging the norms never changes what is trained. bench/gradnorms.py
measures the cost.

Keras has no backend-neutral gradient call, so the gradient itself is taken per backend (TensorFlow, JAX, torch).
"""

from __future__ import annotations

import numpy as np

SAMPLE_ROWS = 256
# "auto" spends at most this share of an epoch's examples on the norms (bench/gradnorms.py: the cost of a logged
# epoch is about SAMPLE_ROWS / training rows of that epoch's compute).
AUTO_SHARE = 0.05


def every(setting: int | str, train_rows: int) -> int:
    """Epochs between logged norms: `setting`, or for "auto" every epoch when SAMPLE_ROWS is at most AUTO_SHARE of
    the training rows, else every k-th epoch so that it stays under that share (digits' 1,197 rows: every 5th)."""
    if setting != "auto":
        return int(setting)
    return max(1, -(-SAMPLE_ROWS // max(1, int(AUTO_SHARE * train_rows))))


def due(epoch: int, every: int) -> bool:
    """Whether the norms are taken after 0-based `epoch`: the first epoch, then every `every`-th (0 = never)."""
    return every > 0 and (epoch == 0 or (epoch + 1) % every == 0)


def layer_of(path: str) -> str:
    """The layer a variable belongs to, from its path (`hidden_0_dense/kernel` -> `hidden_0_dense`)."""
    return path.split("/")[0]


class Sampler:
    """Takes the per-layer gradient norms of a compiled model on a fixed sample of (x, y)."""

    def __init__(self, model, x: np.ndarray, y: np.ndarray, seed: int, rows: int = SAMPLE_ROWS):
        rows_taken = np.sort(np.random.default_rng(seed).choice(len(x), size=min(rows, len(x)), replace=False))
        self.model = model
        self.x, self.y = x[rows_taken], y[rows_taken]
        self._gradients = None

    def __call__(self) -> dict[str, float]:
        import keras

        model = self.model
        if self._gradients is None:
            self._gradients = _GRADIENTS[keras.backend.backend()](model, _loss_function(model))
        state = [v for v in model.variables if not v.trainable]
        saved = [keras.ops.convert_to_numpy(v) for v in state]
        try:
            grads = self._gradients(self.x, self.y)
        finally:
            for v, value in zip(state, saved):
                v.assign(value)
        squares: dict[str, float] = {}
        for variable, grad in zip(model.trainable_variables, grads):
            if grad is None:
                continue
            layer = layer_of(variable.path)
            squares[layer] = squares.get(layer, 0.0) + float(np.sum(np.square(np.asarray(grad, dtype="float64"))))
        return {f"grad_norm/{layer}": float(np.sqrt(s)) for layer, s in squares.items()}


def _loss_function(model):
    import keras

    loss = model.loss
    return keras.losses.get(loss) if isinstance(loss, str) else loss


def _tensorflow(model, loss_fn):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def gradients(x, y):
        with tf.GradientTape() as tape:
            pred = tf.cast(model(x, training=True), "float32")
            value = tf.reduce_mean(loss_fn(y, pred))
        grads = tape.gradient(value, [v.value for v in model.trainable_variables])
        # An embedding's gradient comes as IndexedSlices (the rows looked up): made dense, its norm is the same.
        return [None if g is None else tf.convert_to_tensor(g) for g in grads]

    return lambda x, y: [None if g is None else g.numpy() for g in gradients(x, y)]


def _jax(model, loss_fn):
    import jax
    import jax.numpy as jnp

    def value(trainable, non_trainable, x, y):
        pred, _ = model.stateless_call(trainable, non_trainable, x, training=True)
        return jnp.mean(loss_fn(y, pred.astype("float32")))

    grad = jax.jit(jax.grad(value))

    def gradients(x, y):
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        return [np.asarray(g) for g in grad(trainable, non_trainable, x, y)]

    return gradients


def _torch(model, loss_fn):
    import torch

    def gradients(x, y):
        variables = [v.value for v in model.trainable_variables]
        pred = model(torch.as_tensor(x), training=True).float()
        value = torch.mean(loss_fn(torch.as_tensor(y), pred))
        grads = torch.autograd.grad(value, variables, allow_unused=True)
        return [None if g is None else g.detach().cpu().numpy() for g in grads]

    return gradients


_GRADIENTS = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}
