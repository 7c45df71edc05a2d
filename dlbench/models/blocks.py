"""Shared building blocks (initializers, activations, conv and dense blocks, pooling, input augmentation and
noise, the catalogue switches of every family with hidden layers), written with keras.layers and keras.ops only."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import pydantic

# Keras activation names. leaky_relu's slope for x < 0 is the `negative_slope` switch; selu is self-normalizing
# only with lecun_normal init and no batch norm (Klambauer et al. 2017), which the switches leave to the spec.
Activation = Literal["relu", "sigmoid", "tanh", "elu", "leaky_relu", "linear", "selu", "gelu", "swish", "softplus"]
BNPosition = Literal["before", "after"]
LEAKY_SLOPE = 0.01  # leaky_relu's default slope for x < 0
# glorot_* and he_* are the modern scaled inits; the rest are the plain pre-2010 settings:
#   standard_uniform: U[-1/sqrt(fan_in), 1/sqrt(fan_in)], the "standard" heuristic of Glorot & Bengio (2010), eq. 1;
#   small_uniform: U[-0.05, 0.05];  small_normal: N(0, 0.01^2).
Initializer = Literal["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                      "standard_uniform", "small_uniform", "small_normal"]


def initializer(name: str, seed: int | None = None):
    import keras

    if name == "standard_uniform":
        scale, mode, distribution = _VARIANCE_SCALING[name]
        return keras.initializers.VarianceScaling(scale=scale, mode=mode, distribution=distribution, seed=seed)
    if name == "small_uniform":
        return keras.initializers.RandomUniform(-0.05, 0.05, seed=seed)
    if name == "small_normal":
        return keras.initializers.RandomNormal(stddev=0.01, seed=seed)
    return keras.initializers.get({"class_name": name, "config": {"seed": seed}})


# (scale, mode) of Keras's variance-scaling initializers, and the distribution each draws from.
_VARIANCE_SCALING = {"glorot_uniform": (1.0, "fan_avg", "uniform"), "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
                     "he_normal": (2.0, "fan_in", "truncated_normal"), "he_uniform": (2.0, "fan_in", "uniform"),
                     "lecun_normal": (1.0, "fan_in", "truncated_normal"),
                     # uniform limit sqrt(3 * scale / fan_in); scale 1/3 gives the classic 1/sqrt(fan_in)
                     "standard_uniform": (1.0 / 3.0, "fan_in", "uniform")}


def depthwise_initializer(name: str, channels: int, seed: int | None = None):
    """`initializer(name)` for a depthwise kernel (kh, kw, channels, 1), scaled to its true fan-in kh * kw.

    Keras computes the fans of that shape as if every channel fed every output (fan_in = kh * kw * channels), so
    a He or Glorot init comes out sqrt(channels) too small per layer. Through a dozen depthwise layers the signal
    shrinks by orders of magnitude; batch norm hides it while training (batch statistics) but its moving variance,
    which starts at 1, then lags far behind and inference collapses: MobileNet on digits reached 0.10 validation
    accuracy at training loss 0.01 before this correction.
    """
    import keras

    if name not in _VARIANCE_SCALING:  # absolute inits (small_uniform, ...) do not depend on the fans
        return initializer(name, seed)
    scale, mode, distribution = _VARIANCE_SCALING[name]
    factor = {"fan_in": channels, "fan_out": 1.0, "fan_avg": (channels + 1) / 2}[mode]
    return keras.initializers.VarianceScaling(scale=scale * factor, mode=mode, distribution=distribution, seed=seed)


def activation(name: str, layer_name: str | None = None, negative_slope: float = LEAKY_SLOPE):
    """The activation layer `name` (a Keras activation name); `negative_slope` is leaky_relu's slope for x < 0."""
    import keras

    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=negative_slope, name=layer_name)
    return keras.layers.Activation(name, name=layer_name)


# === Convolutional families ===

Pooling = Literal["max", "average", "none"]  # "none": downsample with a stride-2 convolution instead
GlobalPooling = Literal["flatten", "global_average", "global_max"]
# Training-time input augmentation for images: horizontal flips, random shifts of up to 1/8 of the height and
# width (4 pixels of a 32x32 image, whole pixels, zero fill), or both.
Augment = Literal["none", "flip", "shift", "flip_shift"]
SHIFT = 0.125


@dataclasses.dataclass(frozen=True)
class Switches:
    """The catalogue switches every builder with hidden layers takes (the convolutional families and the MLP); a
    family may override a default (ResNet's batch_norm is on, the MLP's init is glorot_uniform). Each switch is
    implemented once, here: `model_input` (augment, input_noise, input_dropout), `conv_block` and `dense_block`
    (every hidden layer) and `classifier` (the head: init, l1, l2 only). Every neutral value keeps the graph and
    the layer names of the plain network, so arms differ only in the switch they test.
    """

    activation: Activation = "relu"
    batch_norm: bool = False  # BN in each conv block and hidden dense layer, placed by bn_position
    dropout: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.0  # after each block's activation (and BN)
    init: Initializer = "he_normal"
    augment: Augment = "none"  # images only; active only while training
    negative_slope: Annotated[float, pydantic.Field(ge=0.0)] = LEAKY_SLOPE  # leaky_relu's slope for x < 0
    # L1 and L2 penalties (keras.regularizers.L1L2) on every kernel: hidden layers, depthwise kernels and the head.
    l1: Annotated[float, pydantic.Field(ge=0.0)] = 0.0
    l2: Annotated[float, pydantic.Field(ge=0.0)] = 0.0
    # Max-norm constraint (Srivastava et al. 2014): after each update, each hidden unit's incoming weight vector
    # is rescaled to norm <= max_norm (the head is left free). 0: off.
    max_norm: Annotated[float, pydantic.Field(ge=0.0)] = 0.0
    # Training-only input corruption, after augmentation: additive Gaussian noise of this standard deviation
    # (at most 1: keras.layers.GaussianNoise refuses more), then dropout of this fraction of the inputs.
    input_noise: Annotated[float, pydantic.Field(ge=0.0, le=1.0)] = 0.0
    input_dropout: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.0
    # With batch_norm: BN between the layer and its activation (Ioffe & Szegedy 2015; the conv or dense layer then
    # has no bias, BN's beta replaces it) or after the activation (the layer keeps its bias).
    bn_position: BNPosition = "before"


def regularizer(sw: Switches):
    """The L1/L2 kernel penalty of the switches, or None when both are 0 (no regularization loss at all)."""
    import keras

    if sw.l1 == 0.0 and sw.l2 == 0.0:
        return None
    return keras.regularizers.L1L2(l1=sw.l1, l2=sw.l2)


def max_norm(sw: Switches, rank: int, depthwise: bool = False):
    """The max-norm constraint of a hidden kernel, or None when sw.max_norm is 0.

    The norm is taken over each unit's incoming weights: every kernel axis but the last, i.e. axis 0 of a Dense
    kernel (in, out) and axes [0, 1, 2] of a Conv2D kernel (kh, kw, in, out); for a depthwise kernel
    (kh, kw, channels, 1) each channel's own kh x kw kernel, axes [0, 1].

    Args:
        sw: the switches.
        rank: spatial rank of the layer's input: 0 for a Dense layer, 1 for Conv1D, 2 for Conv2D.
        depthwise: a depthwise kernel.
    """
    import keras

    if sw.max_norm == 0.0:
        return None
    axes = list(range(rank + (0 if depthwise else 1)))
    return keras.constraints.MaxNorm(sw.max_norm, axis=axes[0] if len(axes) == 1 else axes)


def _bn_before(sw: Switches) -> bool:
    return sw.batch_norm and sw.bn_position == "before"


def spatial_rank(input_shape: tuple[int, ...]) -> int:
    """1 for sequences (length, channels), 2 for images (height, width, channels)."""
    return len(input_shape) - 1


def augmentation(kind: str, rank: int, name: str = "augment"):
    """The input augmentation layer: the identity for "none", else RandomFlip / RandomTranslation, which are
    active only while training (at inference the model sees the images unchanged).

    Their seeds come from the global seed (`keras.utils.set_random_seed`, which `train.fit` calls before
    building), so a run seed fixes the augmentation draws too. A layer named `name` is always present, so arms
    that differ only in augmentation have the same layer names.
    """
    import keras

    if kind == "none":
        return keras.layers.Identity(name=name)
    if rank != 2:
        what = {0: "flat vectors", 1: "sequences (length, channels)"}.get(rank, f"of rank {rank + 1}")
        raise ValueError(f"augment = {kind!r} flips and shifts images (height, width, channels); these inputs are "
                         f"{what}: use augment = \"none\"")
    steps = []
    if kind in ("flip", "flip_shift"):
        steps.append(keras.layers.RandomFlip("horizontal", name=f"{name}_flip"))
    if kind in ("shift", "flip_shift"):
        # Nearest-pixel shifts with zero fill: the pad-and-crop augmentation of CIFAR ResNets, without blurring.
        steps.append(keras.layers.RandomTranslation(SHIFT, SHIFT, fill_mode="constant", fill_value=0.0,
                                                    interpolation="nearest", name=f"{name}_shift"))
    if not steps:
        raise ValueError(f"`augment` must be one of none, flip, shift, flip_shift. Received augment={kind}")
    return keras.Sequential(steps, name=name)


def _conv_class(rank: int, depthwise: bool = False):
    import keras

    table = {(1, False): keras.layers.Conv1D, (2, False): keras.layers.Conv2D,
             (1, True): keras.layers.DepthwiseConv1D, (2, True): keras.layers.DepthwiseConv2D}
    if (rank, depthwise) not in table:
        raise ValueError(f"convolutions over {rank} spatial dimensions are not supported (inputs must be "
                         "(length, channels) or (height, width, channels))")
    return table[rank, depthwise]


def conv_block(x, filters: int, kernel_size: int, sw: Switches, name: str, *, strides: int = 1,
               depthwise: bool = False, activate: bool = True):
    """conv -> batch norm -> activation -> dropout (bn_position = "after": conv -> activation -> batch norm ->
    dropout): the convolution block of every builder.

    Layers are named `<name>_conv` (`<name>_dwconv` when depthwise), `<name>_bn`, `<name>_act`, `<name>_dropout`.
    The Dropout layer is always present (rate 0.0 is the identity), so dropout arms have the same graph. The
    kernel carries the L1/L2 penalty and the max-norm constraint of the switches.

    Args:
        x: the input tensor, (batch, length, channels) or (batch, height, width, channels); its rank picks
            Conv1D or Conv2D.
        filters: output channels (ignored when depthwise: a depthwise convolution keeps the channels).
        kernel_size: odd kernel side; padding is "same", so only the stride changes the spatial size.
        sw: the catalogue switches.
        name: prefix of the layer names.
        strides: 2 downsamples (pooling = "none", ResNet stage transitions).
        depthwise: a depthwise convolution (one kernel per channel; MobileNet).
        activate: False stops before the activation (ResNet's second convolution, whose activation follows the
            Add): with bn_position = "before" after batch norm, with "after" right after the convolution (which
            then keeps its bias), leaving the activation and its batch norm to the caller (`nonlinearity`).
    """
    import keras

    rank = len(x.shape) - 2
    conv_cls = _conv_class(rank, depthwise)
    common = dict(strides=strides, padding="same", use_bias=not _bn_before(sw))
    if depthwise:
        x = conv_cls(kernel_size, depthwise_initializer=depthwise_initializer(sw.init, x.shape[-1]),
                     depthwise_regularizer=regularizer(sw), depthwise_constraint=max_norm(sw, rank, depthwise=True),
                     name=f"{name}_dwconv", **common)(x)
    else:
        x = conv_cls(filters, kernel_size, kernel_initializer=initializer(sw.init), kernel_regularizer=regularizer(sw),
                     kernel_constraint=max_norm(sw, rank), name=f"{name}_conv", **common)(x)
    if _bn_before(sw):
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if activate:
        x = nonlinearity(x, sw, name)
        x = keras.layers.Dropout(sw.dropout, name=f"{name}_dropout")(x)
    return x


def nonlinearity(x, sw: Switches, name: str):
    """The activation `<name>_act`, then with batch_norm and bn_position = "after" the batch norm `<name>_bn`.

    What follows a layer's pre-activations in every block; ResNet calls it after its Add.
    """
    import keras

    x = activation(sw.activation, f"{name}_act", sw.negative_slope)(x)
    if sw.batch_norm and sw.bn_position == "after":
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return x


def conv_stage(x, filters: int, convs: int, kernel_size: int, pooling: str, sw: Switches, name: str):
    """`convs` conv blocks then a 2x downsampling: pooling, or with pooling = "none" a stride 2 on the last conv.

    Layers: `<name>_<i>_conv` ... for i < convs (see `conv_block`), then `<name>_pool` unless pooling = "none".
    """
    for i in range(convs):
        strided = pooling == "none" and i == convs - 1
        x = conv_block(x, filters, kernel_size, sw, f"{name}_{i}", strides=2 if strided else 1)
    return x if pooling == "none" else pool(x, pooling, f"{name}_pool")


def dense_block(x, units: int, sw: Switches, name: str):
    """Dense -> batch norm -> activation -> dropout, the hidden dense layer of every builder; named, ordered and
    switched like `conv_block` (`<name>_dense`, `<name>_bn`, `<name>_act`, `<name>_dropout`)."""
    import keras

    x = keras.layers.Dense(units, use_bias=not _bn_before(sw), kernel_initializer=initializer(sw.init),
                           kernel_regularizer=regularizer(sw), kernel_constraint=max_norm(sw, 0),
                           name=f"{name}_dense")(x)
    if _bn_before(sw):
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    x = nonlinearity(x, sw, name)
    return keras.layers.Dropout(sw.dropout, name=f"{name}_dropout")(x)


def pool(x, kind: str, name: str, size: int = 2):
    """Max or average pooling with stride `size` and "same" padding (a side of n becomes ceil(n / size), never 0,
    so deep stacks still build on small images)."""
    import keras

    rank = len(x.shape) - 2
    table = {("max", 1): keras.layers.MaxPooling1D, ("max", 2): keras.layers.MaxPooling2D,
             ("average", 1): keras.layers.AveragePooling1D, ("average", 2): keras.layers.AveragePooling2D}
    if (kind, rank) not in table:
        raise ValueError(f"`pooling` must be one of max, average (or none: strided convolutions). Received "
                         f"pooling={kind}")
    return table[kind, rank](size, padding="same", name=name)(x)


def global_pool(x, kind: str, name: str = "global_pool"):
    """Feature maps to a vector: "flatten" (keeps the positions; LeNet, VGG), "global_average" or "global_max"."""
    import keras

    rank = len(x.shape) - 2
    if kind == "flatten":
        return keras.layers.Flatten(name=name)(x)
    table = {("global_average", 1): keras.layers.GlobalAveragePooling1D,
             ("global_average", 2): keras.layers.GlobalAveragePooling2D,
             ("global_max", 1): keras.layers.GlobalMaxPooling1D, ("global_max", 2): keras.layers.GlobalMaxPooling2D}
    if (kind, rank) not in table:
        raise ValueError(f"`global_pooling` must be one of flatten, global_average, global_max. Received "
                         f"global_pooling={kind}")
    return table[kind, rank](name=name)(x)


def classifier(x, num_classes: int, sw: Switches, name: str = "head"):
    """The softmax output layer of every classifier: the init and the L1/L2 penalty of the switches, no max-norm
    (it constrains hidden units only)."""
    import keras

    # float32 under a mixed precision policy too: the softmax and the loss need the range (Keras's advice).
    return keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=initializer(sw.init),
                              kernel_regularizer=regularizer(sw), name=name, dtype="float32")(x)


def output_head(x, info, sw: Switches, name: str = "head"):
    """The output layer for the dataset's task: the softmax `classifier` over its classes ("classification", and
    "tagging", where x holds one vector per position and Dense acts on each), or for "regression" a linear Dense
    with one unit per target (float32 too; the switches' init and L1/L2 penalty)."""
    import keras

    if info.task == "regression":
        return keras.layers.Dense(info.outputs, kernel_initializer=initializer(sw.init),
                                  kernel_regularizer=regularizer(sw), name=name, dtype="float32")(x)
    return classifier(x, info.num_classes, sw, name)


def model_input(info, sw: Switches):
    """The model's input and what the first layer sees: (inputs, x).

    x is the input after the training-only steps, in this order: augmentation (`augment`), Gaussian noise
    (`input_noise`, standard deviation sw.input_noise) and dropout (`input_dropout`, rate sw.input_dropout). All
    three layers are always present and are the identity at inference, and so is each while training at its
    neutral value (GaussianNoise(0) and Dropout(0) return their inputs), so arms keep the same layer names.
    Neither creates a random generator at 0, so with the switches off the seeded initial weights are unchanged.
    """
    import keras

    inputs = keras.Input(shape=tuple(info.input_shape), name="inputs")
    x = augmentation(sw.augment, spatial_rank(tuple(info.input_shape)))(inputs)
    x = keras.layers.GaussianNoise(sw.input_noise, name="input_noise")(x)
    return inputs, keras.layers.Dropout(sw.input_dropout, name="input_dropout")(x)
