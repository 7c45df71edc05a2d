"""Custom Keras layers for the autoencoders: input corruption (masking, Gaussian), a tied-weight decoder, and the
VAE's reparameterised sample; spectrally normalised Dense and Conv2D layers for GAN discriminators.

Imported by the builders when they build (not by the registry), so `dlbench list` never loads Keras.
"""

from __future__ import annotations

import keras
from keras import ops

CORRUPTIONS = ("none", "masking", "gaussian")


@keras.saving.register_keras_serializable(package="dlbench")
class MaskingNoise(keras.layers.Layer):
    """Sets a random fraction `rate` of the inputs to zero while training; the identity otherwise.

    The masking corruption of denoising autoencoders (Vincent et al. 2008, 2010): unlike Dropout, the kept inputs
    are not rescaled, so the network learns to fill in missing values rather than to ignore a rescaling.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"MaskingNoise rate must be in [0, 1). Received rate={rate}")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        keep = keras.random.uniform(ops.shape(inputs), seed=self.seed_generator) >= self.rate
        return ops.where(keep, inputs, ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="dlbench")
class TiedDense(keras.layers.Layer):
    """A decoder layer whose kernel is the transpose of an encoder Dense layer's kernel (it owns only its bias).

    `tied_to` must be built before this layer is called (in a functional model: called earlier in the graph).
    The tie is to a layer object, so a model that uses TiedDense is rebuilt by its builder, not from a config.
    """

    def __init__(self, tied_to: keras.layers.Dense, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.tied_to = tied_to
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        units = self.tied_to.kernel.shape[0]
        self.bias = self.add_weight(name="bias", shape=(units,), initializer="zeros")

    def call(self, inputs):
        return self.activation(ops.matmul(inputs, ops.transpose(self.tied_to.kernel)) + self.bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.tied_to.kernel.shape[0])

    def get_config(self):
        return {**super().get_config(), "tied_to": self.tied_to.name,
                "activation": keras.activations.serialize(self.activation)}


def corruption(kind: str, level: float, name: str, seed: int | None = None) -> keras.layers.Layer:
    """The input corruption of a denoising autoencoder, active only while training.

    Args:
        kind: "none" (identity), "masking" (a fraction `level` of the inputs set to 0) or "gaussian" (additive
            N(0, level^2) noise).
        level: masking fraction in [0, 1), or the Gaussian standard deviation.
        name: layer name.
        seed: noise seed; None draws it from the global seed (set by `keras.utils.set_random_seed`).
    """
    if kind == "none":
        return keras.layers.Identity(name=name)
    if kind == "masking":
        return MaskingNoise(level, seed=seed, name=name)
    if kind == "gaussian":
        return keras.layers.GaussianNoise(level, seed=seed, name=name)
    raise ValueError(f"`noise` must be one of {', '.join(CORRUPTIONS)}. Received noise={kind}")


@keras.saving.register_keras_serializable(package="dlbench")
class GaussianSample(keras.layers.Layer):
    """A VAE's reparameterised sample z = mean + exp(log_var / 2) * eps, eps ~ N(0, I), from [mean, log_var]; at
    training and at evaluation alike (the ELBO is an expectation over q(z|x), estimated with one sample)."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        mean, log_var = inputs
        eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator, dtype=mean.dtype)
        return mean + ops.exp(0.5 * log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def _spectral_normalized(layer, kernel, training: bool):
    """`kernel` divided by its largest singular value sigma (Miyato et al. 2018), estimated by one power iteration
    from the layer's persistent vector `sn_u`, which training updates. The gradient flows through sigma (u and v
    are held constant), as in the paper; the kernel variable itself is never overwritten."""
    matrix = ops.reshape(kernel, (-1, kernel.shape[-1]))
    u = layer.sn_u.value
    v = ops.stop_gradient(_unit(ops.matmul(u, ops.transpose(matrix))))
    u = ops.stop_gradient(_unit(ops.matmul(v, matrix)))
    sigma = ops.sum(ops.matmul(v, matrix) * u)
    if training:
        layer.sn_u.assign(u)
    return kernel / sigma


def _unit(x):
    return x / (ops.sqrt(ops.sum(ops.square(x))) + 1e-12)


class _SpectrallyNormalized:
    """Mixed into a Dense or Conv2D (channels last) layer: its kernel is spectrally normalised on every call."""

    def build(self, input_shape):
        super().build(input_shape)
        self.sn_u = self.add_weight(shape=(1, self.kernel.shape[-1]), trainable=False, name="sn_u",
                                    initializer=keras.initializers.RandomNormal(stddev=1.0))

    # Every variable, `sn_u` too (Dense and Conv2D save their kernel and bias by name only).
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def call(self, inputs, training=False):
        kernel = _spectral_normalized(self, self.kernel, training)
        y = ops.matmul(inputs, kernel) if isinstance(self, keras.layers.Dense) else self.convolution_op(inputs, kernel)
        if self.use_bias:
            y = y + self.bias  # the last axis: units, or channels last
        return self.activation(y) if self.activation is not None else y


@keras.saving.register_keras_serializable(package="dlbench")
class SpectralDense(_SpectrallyNormalized, keras.layers.Dense):
    """A Dense layer whose kernel is spectrally normalised on every call (`_spectral_normalized`)."""


@keras.saving.register_keras_serializable(package="dlbench")
class SpectralConv2D(_SpectrallyNormalized, keras.layers.Conv2D):
    """A Conv2D layer (channels last) whose kernel is spectrally normalised on every call (`_spectral_normalized`,
    the kernel read as a (height x width x channels_in, filters) matrix)."""
