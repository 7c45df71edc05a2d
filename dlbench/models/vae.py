"""Variational autoencoder (Kingma & Welling 2014): an encoder to a diagonal Gaussian q(z|x), one reparameterised
sample z = mean + exp(log_var / 2) * eps, a decoder to p(x|z), trained on the negative evidence lower bound.

Task `generative`: the targets are the inputs; the loss is reconstruction + beta * KL (beta = 1: the negative
ELBO; beta > 1: a beta-VAE, Higgins et al. 2017), summed over an example's pixels and latents, averaged over the
batch. Metrics, per example and in nats (the `val_` and `test_` forms too):
  - `reconstruction`: -log p(x|z) for the sampled z (Bernoulli: the binary cross-entropy of the inputs in [0, 1]
    against the decoder's probabilities; Gaussian: unit variance around the decoder's mean, with its constant);
  - `kl`: KL(q(z|x) || N(0, I)), in closed form;
  - `elbo`: -(reconstruction + kl), whatever beta (higher is better). On validation and test data it is the
    one-sample estimate, as in Kingma & Welling's figures.
The model's output packs, per example, the decoder's output (logits for Bernoulli, means for Gaussian; flattened)
followed by the latent means and log-variances, so the loss and every metric are plain functions of
(inputs, output) that run on every Keras backend; `reconstruct` and `decoder` take what a user looks at.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal

import pydantic

from dlbench.models import refusals
from dlbench.models.blocks import Activation, Initializer, activation, initializer

DESCRIPTION = ("Variational autoencoder: dense or convolutional encoder/decoder, latent_dim, beta (beta-VAE), "
               "Bernoulli or Gaussian likelihood; task generative, metrics elbo, reconstruction, kl")

Encoder = Literal["dense", "conv"]
Likelihood = Literal["bernoulli", "gaussian"]


@dataclasses.dataclass(frozen=True)
class HParams:
    encoder: Encoder = "dense"  # "conv": stride-2 convolutions down, transposed convolutions up (images only)
    latent_dim: Annotated[int, pydantic.Field(ge=1, le=1024)] = 10
    beta: Annotated[float, pydantic.Field(ge=0.0)] = 1.0  # weight of the KL term in the training loss
    likelihood: Likelihood = "bernoulli"  # Bernoulli: inputs must lie in [0, 1]
    depth: Annotated[int, pydantic.Field(ge=1, le=8)] = 1  # dense: hidden layers of the encoder (and decoder)
    width: Annotated[int, pydantic.Field(ge=1)] = 256  # dense: units per hidden layer
    blocks: Annotated[int, pydantic.Field(ge=1, le=4)] = 2  # conv: stride-2 blocks (each halves height and width)
    filters: Annotated[int, pydantic.Field(ge=1)] = 32  # conv: channels of the first block, doubled at each next
    activation: Activation = "relu"
    init: Initializer = "he_normal"


def fits(hp: HParams, input_shape: tuple[int, ...]) -> str | None:
    """Why these hyperparameters cannot take inputs of `input_shape`, or None."""
    if hp.encoder == "conv":
        return refusals.halving_images('encoder = "conv"', hp.blocks, input_shape, 'encoder = "dense"')
    return None


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the VAE for a dataset's inputs (labels are not used).

    Layers: the `encoder` and `decoder` sub-models, `z_mean` and `z_log_var` (Dense to latent_dim), `z`
    (the sample), `packed` (decoder output, means, log-variances: the model's float32 output)."""
    import keras

    from dlbench.models.layers import GaussianSample

    shape = tuple(info.input_shape)
    reason = fits(hp, shape)
    if reason:
        raise ValueError(reason)
    size = math.prod(shape)

    def dense(units: int, name: str):
        return keras.layers.Dense(units, kernel_initializer=initializer(hp.init), name=name)

    # === Encoder ===
    inputs = keras.Input(shape=shape, name="inputs")
    x = inputs
    if hp.encoder == "dense":
        x = keras.layers.Flatten(name="flatten")(x)
        for i in range(hp.depth):
            x = activation(hp.activation, f"encoder_{i}_act")(dense(hp.width, f"encoder_{i}")(x))
    else:
        for i in range(hp.blocks):
            x = keras.layers.Conv2D(hp.filters * 2 ** i, 3, strides=2, padding="same",
                                    kernel_initializer=initializer(hp.init), name=f"encoder_{i}")(x)
            x = activation(hp.activation, f"encoder_{i}_act")(x)
        x = keras.layers.Flatten(name="flatten")(x)
    mean = keras.layers.Dense(hp.latent_dim, name="z_mean", dtype="float32")(x)
    log_var = keras.layers.Dense(hp.latent_dim, name="z_log_var", kernel_initializer="zeros", dtype="float32")(x)
    encoder = keras.Model(inputs, [mean, log_var], name="encoder")

    # === Decoder ===
    latent = keras.Input(shape=(hp.latent_dim,), name="latent")
    if hp.encoder == "dense":
        y = latent
        for i in reversed(range(hp.depth)):
            y = activation(hp.activation, f"decoder_{i}_act")(dense(hp.width, f"decoder_{i}")(y))
        y = keras.layers.Dense(size, name="decoded", dtype="float32")(y)
    else:
        small = (shape[0] // 2 ** hp.blocks, shape[1] // 2 ** hp.blocks, hp.filters * 2 ** (hp.blocks - 1))
        y = dense(math.prod(small), "decoder_in")(latent)
        y = activation(hp.activation, "decoder_in_act")(keras.layers.Reshape(small, name="unflatten")(y))
        for i in reversed(range(hp.blocks)):
            y = keras.layers.Conv2DTranspose(hp.filters * 2 ** max(i - 1, 0), 3, strides=2, padding="same",
                                             kernel_initializer=initializer(hp.init), name=f"decoder_{i}")(y)
            y = activation(hp.activation, f"decoder_{i}_act")(y)
        y = keras.layers.Conv2D(shape[-1], 3, padding="same", name="decoded_image", dtype="float32")(y)
        y = keras.layers.Flatten(name="decoded", dtype="float32")(y)
    decoder = keras.Model(latent, y, name="decoder")

    # === The VAE ===
    m, lv = encoder(inputs)
    z = GaussianSample(name="z")([m, lv])
    packed = keras.layers.Concatenate(name="packed", dtype="float32")([decoder(z), m, lv])
    return keras.Model(inputs, packed, name="vae")


# --- the objective: plain functions of (inputs, packed output), Keras ops only ---

def _split(y_true, y_pred):
    from keras import ops

    size = math.prod(y_true.shape[1:])
    x = ops.reshape(ops.cast(y_true, "float32"), (-1, size))
    latent = (y_pred.shape[-1] - size) // 2
    return x, y_pred[:, :size], y_pred[:, size:size + latent], y_pred[:, size + latent:]


def reconstruction_nll(y_true, y_pred, likelihood: str = "bernoulli"):
    """-log p(x|z) per example, summed over the input's elements (nats)."""
    from keras import ops

    x, out, _, _ = _split(y_true, y_pred)
    if likelihood == "bernoulli":  # the binary cross-entropy with logits, stable for large |logits|
        per = ops.maximum(out, 0.0) - out * x + ops.log1p(ops.exp(-ops.abs(out)))
        return ops.sum(per, axis=-1)
    return ops.sum(0.5 * ops.square(x - out), axis=-1) + 0.5 * x.shape[-1] * math.log(2 * math.pi)


def kl_divergence(y_true, y_pred):
    """KL(N(mean, exp(log_var)) || N(0, I)) per example, summed over the latents (nats)."""
    from keras import ops

    _, _, mean, log_var = _split(y_true, y_pred)
    return 0.5 * ops.sum(ops.square(mean) + ops.exp(log_var) - 1.0 - log_var, axis=-1)


def loss(hp: HParams):
    """The training loss: reconstruction + beta * KL (the negative ELBO at beta = 1)."""

    def negative_elbo(y_true, y_pred):
        return reconstruction_nll(y_true, y_pred, hp.likelihood) + hp.beta * kl_divergence(y_true, y_pred)

    negative_elbo.task_metrics = metric_functions(hp.likelihood)  # what the trainer logs (train.TASKS)
    return negative_elbo


def metric_functions(likelihood: str) -> dict:
    """The task's metrics by name: `elbo` (always at beta = 1), `reconstruction`, `kl`."""

    def elbo(y_true, y_pred):
        return -(reconstruction(y_true, y_pred) + kl_divergence(y_true, y_pred))

    def reconstruction(y_true, y_pred):
        return reconstruction_nll(y_true, y_pred, likelihood)

    return {"elbo": elbo, "reconstruction": reconstruction, "kl": kl_divergence}


def _mean(out, likelihood: str):
    """The mean of p(x|z) from the decoder's output: probabilities for Bernoulli logits, the output itself else."""
    import numpy as np

    out = np.asarray(out)
    return 1.0 / (1.0 + np.exp(-out)) if likelihood == "bernoulli" else out


def reconstruct(model, x, likelihood: str = "bernoulli"):
    """The decoder's mean for each input (probabilities for Bernoulli), shaped like the inputs."""
    out = model.predict(x, verbose=0)[:, :math.prod(x.shape[1:])]
    return _mean(out, likelihood).reshape(x.shape)


def pictures(model, info, hp: HParams, count: int = 64, seed: int = 0) -> dict:
    """What a user looks at, as arrays: `samples` (decoder means of `count` draws from the prior), `inputs` and
    their `reconstructions` (the first 16 test examples), as 2-D images where the inputs are images or square
    vectors (else None); with 2-D latents also `latents` (the test set's latent means) and their `labels`."""
    import numpy as np

    shape = tuple(info.input_shape)
    side = math.isqrt(shape[0]) if len(shape) == 1 else 0
    image = shape[:2] if len(shape) == 3 and shape[-1] == 1 else None
    if len(shape) == 1 and side * side == shape[0]:  # a flattened square image (digits, mnist5k flat)
        image = (side, side)
    decoder, encoder = model.get_layer("decoder"), model.get_layer("encoder")
    z = np.random.default_rng(seed).standard_normal((count, hp.latent_dim)).astype("float32")
    samples = _mean(decoder.predict(z, verbose=0), hp.likelihood)
    x = info.test.x[:16]
    pics = {"samples": None, "inputs": None, "reconstructions": None, "latents": None, "labels": None}
    if image is not None:
        pics.update(samples=samples.reshape(-1, *image), inputs=x.reshape(-1, *image),
                    reconstructions=reconstruct(model, x, hp.likelihood).reshape(-1, *image))
    if hp.latent_dim == 2:
        pics["latents"] = np.asarray(encoder.predict(info.test.x, verbose=0)[0])
        pics["labels"] = info.test.y if info.task == "classification" else None
    return pics
