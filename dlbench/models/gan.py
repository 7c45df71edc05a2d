"""Generative adversarial networks: a dense GAN (for 2-D mixtures and flat vectors) and a DCGAN (Radford et al. 2016)
for images, trained by models/adversarial.py's alternating step.

Task `adversarial`: fitted to the dataset's inputs (labels unused). Besides the losses it logs the quality of its
samples (models/gan_metrics.py): on a known mixture (ring8, grid25) `modes` covered and the `high_quality`
fraction; on labelled data (digits, mnist5k) `fid` and `score` from a cached classifier of the real data. Each
epoch scores the same noise against the validation split (`val_*`); a repeat scores fresh noise against the test
split (`test_*`), and also logs the judge's `test_judge_accuracy`, the `test_real_score` of the real test images and
the `test_real_fid` between real training and test images (the floor any generator is measured against).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal

import numpy as np
import pydantic

from dlbench.models import gan_metrics, refusals
from dlbench.models.blocks import Activation, Initializer

DESCRIPTION = ("GAN: dense or DCGAN generator/discriminator, gan_loss minimax|non_saturating|hinge, label_smoothing, "
               "spectral_norm, d_steps; task adversarial, metrics modes/high_quality (ring8, grid25) or fid/score")

Architecture = Literal["dense", "dcgan"]
GanLoss = Literal["minimax", "non_saturating", "hinge"]


@dataclasses.dataclass(frozen=True)
class HParams:
    architecture: Architecture = "dense"  # "dcgan": transposed convolutions up, strided convolutions down (images)
    latent_dim: Annotated[int, pydantic.Field(ge=1, le=1024)] = 64
    gan_loss: GanLoss = "non_saturating"
    label_smoothing: Annotated[float, pydantic.Field(ge=0.0, lt=0.5)] = 0.0  # one-sided: real targets 1 - this
    spectral_norm: bool = False  # spectral normalisation of the discriminator's weighted layers (Miyato et al. 2018)
    d_steps: Annotated[int, pydantic.Field(ge=1, le=10)] = 1  # discriminator updates per generator update
    depth: Annotated[int, pydantic.Field(ge=1, le=8)] = 2  # dense: hidden layers of each network
    width: Annotated[int, pydantic.Field(ge=1)] = 128  # dense: units per hidden layer
    blocks: Annotated[int, pydantic.Field(ge=1, le=4)] = 2  # dcgan: stride-2 blocks (each doubles the side)
    filters: Annotated[int, pydantic.Field(ge=1)] = 32  # dcgan: channels of the discriminator's first block
    g_batch_norm: bool = False  # batch norm after the generator's hidden layers (Radford et al. use it for images)
    d_batch_norm: bool = False  # batch norm in the discriminator (never on its first layer)
    g_activation: Activation = "relu"
    d_activation: Activation = "leaky_relu"  # slope 0.2, as in DCGAN
    init: Initializer = "glorot_uniform"


def fits(hp: HParams, input_shape: tuple[int, ...]) -> str | None:
    """Why these hyperparameters cannot take inputs of `input_shape`, or None."""
    if hp.gan_loss == "hinge" and hp.label_smoothing:
        return "label_smoothing softens the cross-entropy's real targets; the hinge loss has none: set it to 0"
    if hp.architecture == "dcgan":
        return refusals.halving_images('architecture = "dcgan"', hp.blocks, input_shape, 'architecture = "dense"')
    return None


def _output(info) -> str:
    """The generator's output activation: sigmoid where every training input lies in [0, 1], linear otherwise
    (or where the data is not at hand)."""
    x = getattr(getattr(info, "train", None), "x", np.array([-1.0]))
    return "sigmoid" if float(np.min(x)) >= 0.0 and float(np.max(x)) <= 1.0 else "linear"


def build(hp: HParams, info) -> "keras.Model":  # noqa: F821
    """Build the GAN for a dataset's inputs: sub-models `generator` (noise -> sample) and `discriminator`
    (sample -> one logit)."""
    import keras

    from dlbench.models.adversarial import GAN
    from dlbench.models.blocks import initializer
    from dlbench.models.layers import SpectralConv2D, SpectralDense

    shape = tuple(info.input_shape)
    reason = fits(hp, shape)
    if reason:
        raise ValueError(reason)

    def act(name: str, layer: str):
        if name == "leaky_relu":
            return keras.layers.LeakyReLU(negative_slope=0.2, name=layer)
        return keras.layers.Activation(name, name=layer)

    def d_layer(kind, *args, name, **kwargs):
        cls = {"dense": (keras.layers.Dense, SpectralDense), "conv": (keras.layers.Conv2D, SpectralConv2D)}[kind]
        return cls[hp.spectral_norm](*args, kernel_initializer=initializer(hp.init), name=name, **kwargs)

    # === Generator ===
    z = keras.Input(shape=(hp.latent_dim,), name="noise")
    if hp.architecture == "dense":
        y = z
        for i in range(hp.depth):
            y = keras.layers.Dense(hp.width, kernel_initializer=initializer(hp.init), name=f"g_{i}")(y)
            if hp.g_batch_norm:
                y = keras.layers.BatchNormalization(name=f"g_{i}_bn")(y)
            y = act(hp.g_activation, f"g_{i}_act")(y)
        y = keras.layers.Dense(math.prod(shape), kernel_initializer=initializer(hp.init), name="g_out")(y)
        y = keras.layers.Reshape(shape, name="sample_shape")(y)
    else:
        side = (shape[0] // 2 ** hp.blocks, shape[1] // 2 ** hp.blocks)
        channels = hp.filters * 2 ** (hp.blocks - 1)
        y = keras.layers.Dense(math.prod(side) * channels, kernel_initializer=initializer(hp.init), name="g_in")(z)
        y = keras.layers.Reshape((*side, channels), name="g_in_shape")(y)
        if hp.g_batch_norm:
            y = keras.layers.BatchNormalization(name="g_in_bn")(y)
        y = act(hp.g_activation, "g_in_act")(y)
        for i in reversed(range(1, hp.blocks)):
            y = keras.layers.Conv2DTranspose(hp.filters * 2 ** (i - 1), 4, strides=2, padding="same",
                                             kernel_initializer=initializer(hp.init), name=f"g_{i}")(y)
            if hp.g_batch_norm:
                y = keras.layers.BatchNormalization(name=f"g_{i}_bn")(y)
            y = act(hp.g_activation, f"g_{i}_act")(y)
        y = keras.layers.Conv2DTranspose(shape[-1], 4, strides=2, padding="same",
                                         kernel_initializer=initializer(hp.init), name="g_out")(y)
    sample = keras.layers.Activation(_output(info), name="sample", dtype="float32")(y)
    generator = keras.Model(z, sample, name="generator")

    # === Discriminator ===
    x_in = keras.Input(shape=shape, name="inputs")
    x = x_in
    if hp.architecture == "dense":
        x = keras.layers.Flatten(name="flatten")(x)
        for i in range(hp.depth):
            x = d_layer("dense", hp.width, name=f"d_{i}")(x)
            if hp.d_batch_norm and i > 0:
                x = keras.layers.BatchNormalization(name=f"d_{i}_bn")(x)
            x = act(hp.d_activation, f"d_{i}_act")(x)
    else:
        for i in range(hp.blocks):
            x = d_layer("conv", hp.filters * 2 ** i, 4, strides=2, padding="same", name=f"d_{i}")(x)
            if hp.d_batch_norm and i > 0:
                x = keras.layers.BatchNormalization(name=f"d_{i}_bn")(x)
            x = act(hp.d_activation, f"d_{i}_act")(x)
        x = keras.layers.Flatten(name="flatten")(x)
    logit = d_layer("dense", 1, name="d_out", dtype="float32")(x)
    discriminator = keras.Model(x_in, logit, name="discriminator")

    seed = int(np.random.randint(2 ** 31 - 1))  # the noise follows the run seed (set before building)
    return GAN(generator, discriminator, hp.latent_dim, hp.gan_loss, hp.label_smoothing, hp.d_steps, seed=seed,
               name="gan")


# --- what the samples are worth (host side, after each epoch) ---

def metrics_on(info) -> dict[str, str | None]:
    """Every sample metric a GAN may name -> None where it is available on this dataset, else why not."""
    return {m: gan_metrics.available(m, info) for m in (*gan_metrics.MIXTURE_METRICS, *gan_metrics.JUDGE_METRICS)}


def evaluator(info):
    """(model, split) -> the sample metrics of the generator against "val" or "test". Trains or loads the dataset's
    judge now, before any run seeds its training."""
    available = [m for m, why in metrics_on(info).items() if why is None]
    judge = gan_metrics.judge(info) if any(m in gan_metrics.JUDGE_METRICS for m in available) else None
    reference = {}

    def evaluate(model, split: str) -> dict[str, float]:
        real = getattr(info, split)
        rng = np.random.default_rng({"val": 1, "test": 2}[split])  # the same noise every epoch
        if info.modes is not None:
            z = rng.standard_normal((gan_metrics.SAMPLES, model.latent_dim)).astype("float32")
            samples = np.asarray(model.generator.predict(z, batch_size=1024, verbose=0))
            return gan_metrics.mode_metrics(samples.reshape(len(samples), -1), info.modes, info.mode_std)
        if judge is None:
            return {}
        z = rng.standard_normal((gan_metrics.IMAGE_SAMPLES, model.latent_dim)).astype("float32")
        probs, features = judge(np.asarray(model.generator.predict(z, batch_size=1024, verbose=0)))
        if split not in reference:
            reference[split] = judge(real.x)
        out = {"fid": gan_metrics.frechet_distance(features, reference[split][1]),
               "score": gan_metrics.classifier_score(probs)}
        if split == "test":
            out.update(judge_accuracy=judge.accuracy, real_score=gan_metrics.classifier_score(reference[split][0]),
                       real_fid=gan_metrics.frechet_distance(judge(info.train.x)[1], reference[split][1]))
        return out

    return evaluate


def pictures(model, info, hp: HParams, count: int = 64, seed: int = 0) -> dict:
    """`samples`: `count` generated images where the inputs are images or square vectors; `points` and
    `reference`: for 2-D data, 2,500 generated points and the real test points (with the mixture's modes)."""
    shape = tuple(info.input_shape)
    rng = np.random.default_rng(seed)
    pics = {"samples": None, "points": None, "reference": None}
    if shape == (2,):
        z = rng.standard_normal((gan_metrics.SAMPLES, hp.latent_dim)).astype("float32")
        pics.update(points=np.asarray(model.generator.predict(z, verbose=0)), reference=info.test.x)
        return pics
    side = math.isqrt(shape[0]) if len(shape) == 1 else 0
    image = shape[:2] if len(shape) == 3 and shape[-1] == 1 else (side, side) if side * side == shape[0] else None
    if image is not None:
        z = rng.standard_normal((count, hp.latent_dim)).astype("float32")
        pics["samples"] = np.asarray(model.generator.predict(z, verbose=0)).reshape(-1, *image)
    return pics
