"""Custom Keras layers of the sequence builders (rnn, tcn, transformer): position encodings, the class token,
image patches and per-step readouts, plus `sequence_input`, the input stem they share. keras.ops only.

Imported by the builders when they build (not by the registry), so `dlbench list` never loads Keras.
"""

from __future__ import annotations

import keras
from keras import ops

from dlbench.models import blocks


@keras.saving.register_keras_serializable(package="dlbench")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Adds the fixed position encoding of Vaswani et al. (2017), section 3.5, to (batch, time, d) inputs:

        PE[pos, 2i] = sin(pos / max_wavelength^(2i / d)),  PE[pos, 2i + 1] = cos(pos / max_wavelength^(2i / d)).

    For odd d the last feature 2i = d - 1 is a sine. No weights; any sequence length.
    """

    def __init__(self, max_wavelength: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength

    def call(self, inputs):
        shape = ops.shape(inputs)
        time, d = shape[1], inputs.shape[-1]
        positions = ops.cast(ops.arange(time), "float32")
        features = ops.arange(d)
        even = ops.cast((features // 2) * 2, "float32")  # 2i for features 2i and 2i + 1
        rates = ops.power(ops.cast(self.max_wavelength, "float32"), -even / float(d))
        angles = positions[:, None] * rates[None, :]  # (time, d)
        encoding = ops.where(features % 2 == 0, ops.sin(angles), ops.cos(angles))
        return inputs + ops.cast(encoding, inputs.dtype)[None, :, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


@keras.saving.register_keras_serializable(package="dlbench")
class LearnedPositionEmbedding(keras.layers.Layer):
    """Adds a trainable (max_length, d) table of position vectors to (batch, time, d) inputs, time <= max_length
    (BERT, ViT). Initialised N(0, 0.02^2) as in BERT and ViT unless `initializer` says otherwise."""

    def __init__(self, max_length: int, initializer="truncated_normal", **kwargs):
        super().__init__(**kwargs)
        if max_length < 1:
            raise ValueError(f"LearnedPositionEmbedding max_length must be >= 1. Received max_length={max_length}")
        self.max_length = max_length
        if initializer == "truncated_normal":
            initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        time = input_shape[1]
        if time is not None and time > self.max_length:
            raise ValueError(f"LearnedPositionEmbedding holds {self.max_length} positions; the inputs have {time}")
        self.embeddings = self.add_weight(name="embeddings", shape=(self.max_length, input_shape[-1]),
                                          initializer=self.initializer)

    def call(self, inputs):
        time = ops.shape(inputs)[1]
        table = ops.convert_to_tensor(self.embeddings)  # ops.slice takes tensors, not variables (JAX)
        table = ops.slice(table, (0, 0), (time, self.embeddings.shape[-1]))
        return inputs + ops.cast(table, inputs.dtype)[None, :, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length,
                "initializer": keras.initializers.serialize(self.initializer)}


@keras.saving.register_keras_serializable(package="dlbench")
class ClassToken(keras.layers.Layer):
    """Prepends one learned d-vector (initialised to zeros, as in ViT) to every sequence: (b, t, d) -> (b, t+1, d).

    Position 0 then holds the class token, which the readout takes (`TimeStep(0)`) and tagging drops
    (`DropClassToken`)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.token = self.add_weight(name="token", shape=(1, 1, input_shape[-1]), initializer="zeros")

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        token = ops.broadcast_to(ops.cast(self.token, inputs.dtype), (batch, 1, inputs.shape[-1]))
        return ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        time = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], time, input_shape[2])


@keras.saving.register_keras_serializable(package="dlbench")
class DropClassToken(keras.layers.Layer):
    """Drops the first position (the class token of `ClassToken`): (b, t+1, d) -> (b, t, d)."""

    def call(self, inputs):
        return inputs[:, 1:, :]

    def compute_output_shape(self, input_shape):
        time = None if input_shape[1] is None else input_shape[1] - 1
        return (input_shape[0], time, input_shape[2])


@keras.saving.register_keras_serializable(package="dlbench")
class TimeStep(keras.layers.Layer):
    """One position of each sequence: (b, t, d) -> (b, d); `index` counts from 0, or from the end when negative
    (-1: the last step, the readout of a causal network; 0: the class token)."""

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    def call(self, inputs):
        return inputs[:, self.index, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="dlbench")
class Patches(keras.layers.Layer):
    """Cuts images (b, H, W, C) into non-overlapping patch_size x patch_size patches, flattened:
    (b, n_patches, patch_size * patch_size * C), the tokens of a Vision Transformer (Dosovitskiy et al. 2021).

    Patches come in row-major order (left to right, then top to bottom), each flattened row by row, channels
    last. H and W are zero-padded at the bottom and right up to a multiple of patch_size, so any size works:
    n_patches = ceil(H / patch_size) * ceil(W / patch_size).
    """

    def __init__(self, patch_size: int, **kwargs):
        super().__init__(**kwargs)
        if patch_size < 1:
            raise ValueError(f"Patches patch_size must be >= 1. Received patch_size={patch_size}")
        self.patch_size = patch_size

    def _grid(self, height: int, width: int) -> tuple[int, int]:
        p = self.patch_size
        return -(-height // p), -(-width // p)

    def call(self, inputs):
        p = self.patch_size
        height, width, channels = inputs.shape[1], inputs.shape[2], inputs.shape[3]
        rows, cols = self._grid(height, width)
        pad_h, pad_w = rows * p - height, cols * p - width
        if pad_h or pad_w:
            inputs = ops.pad(inputs, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])
        x = ops.reshape(inputs, (-1, rows, p, cols, p, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # (b, rows, cols, p, p, C)
        return ops.reshape(x, (-1, rows * cols, p * p * channels))

    def compute_output_shape(self, input_shape):
        rows, cols = self._grid(input_shape[1], input_shape[2])
        return (input_shape[0], rows * cols, self.patch_size**2 * input_shape[3])

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


def readout(x, kind: str, name: str = "readout"):
    """(b, t, d) -> (b, d): the last step ("last"), the first ("cls": the class token) or the mean over time; or
    (b, t * d), every step's vector concatenated ("flatten")."""
    if kind == "mean":
        return keras.layers.GlobalAveragePooling1D(name=name)(x)
    if kind == "flatten":
        return keras.layers.Flatten(name=name)(x)
    if kind in ("last", "cls"):
        return TimeStep(-1 if kind == "last" else 0, name=name)(x)
    raise ValueError(f"`readout` must be one of last, mean, flatten, cls. Received readout={kind}")


def sequence_input(info, sw: blocks.Switches, embedding_dim: int, model: str):
    """The input stem of the sequence builders: (inputs, x), x of shape (batch, time, features).

    Token inputs (info.vocab > 0, shape (length,)): integer ids -> `embedding` (keras Embedding(vocab,
    embedding_dim), Keras's uniform init, no penalty) -> `input_noise` -> `input_dropout`: Gaussian noise on and
    dropout of the embedded vectors (the ids themselves cannot take noise). No padding mask: every position counts.
    Real-valued inputs: `blocks.model_input` (augment, input_noise, input_dropout on the raw features).

    Raises:
        ValueError: augment with token inputs (it flips and shifts images).
    """
    if not info.vocab:
        return blocks.model_input(info, sw)
    if sw.augment != "none":
        raise ValueError(f"augment = {sw.augment!r} flips and shifts images; {model} is given token ids here: "
                         "use augment = \"none\"")
    inputs = keras.Input(shape=tuple(info.input_shape), dtype="int32", name="inputs")
    x = keras.layers.Embedding(info.vocab, embedding_dim, name="embedding")(inputs)
    x = keras.layers.GaussianNoise(sw.input_noise, name="input_noise")(x)
    return inputs, keras.layers.Dropout(sw.input_dropout, name="input_dropout")(x)
