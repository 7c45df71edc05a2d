"""Compute cost of a model: multiply-add FLOPs per example, counted by walking its layers.

A multiply-accumulate (MAC) counts as 2 FLOPs. Counted: Dense (also on sequences), Conv1D/2D/3D at any stride
(per output position: the kernel's weights), DepthwiseConv1D/2D, SeparableConv1D/2D (depthwise then pointwise, both
at the output resolution), Conv1D/2D/3DTranspose (per input position), BatchNormalization (one multiply-add per
element, as at inference), the recurrent layers SimpleRNN/LSTM/GRU (per time step: the input and the recurrent
kernels; both directions of a Bidirectional) and MultiHeadAttention as self-attention (the query, key, value and
output projections at every position, plus the scores and the weighted sum: 2 x length^2 x heads x key_dim).
Embedding lookups are free. Not counted: biases, activations, pooling, Add/Concatenate and the other element-wise
layers, all small beside the weighted layers. Nested models (keras.Sequential, keras.applications' functional
models) are walked through their layers. Augmentation layers cost nothing at inference and are not counted.
"""

from __future__ import annotations

import math


def flops_per_example(model) -> int:
    """Estimated forward-pass FLOPs (2 per multiply-add) for one example.

    Args:
        model: a built keras.Model (functional or Sequential, possibly nesting others).

    Returns:
        The FLOPs, an int.
    """
    return 2 * _macs(model)


def _macs(model) -> int:
    return sum(_layer_macs(layer) for layer in model.layers)


def _positions(shape, data_format: str | None) -> int:
    """Number of spatial positions of a (batch, ..., channels) or (batch, channels, ...) shape."""
    spatial = shape[2:] if data_format == "channels_first" else shape[1:-1]
    return math.prod(int(d) for d in spatial)


def _layer_macs(layer) -> int:
    import keras

    if isinstance(layer, keras.Model):  # Sequential is a Model too
        return _macs(layer)
    kl = keras.layers
    data_format = getattr(layer, "data_format", None)
    if isinstance(layer, (kl.Conv1DTranspose, kl.Conv2DTranspose, kl.Conv3DTranspose)):
        return _positions(layer.input.shape, data_format) * math.prod(layer.kernel.shape)
    if isinstance(layer, (kl.SeparableConv1D, kl.SeparableConv2D)):
        per_position = math.prod(layer.depthwise_kernel.shape) + math.prod(layer.pointwise_kernel.shape)
        return _positions(layer.output.shape, data_format) * per_position
    if isinstance(layer, (kl.DepthwiseConv1D, kl.DepthwiseConv2D)):
        # kernel (k..., in_channels, depth_multiplier): each output value reads k... inputs of one channel.
        return _positions(layer.output.shape, data_format) * math.prod(layer.kernel.shape)
    if isinstance(layer, (kl.Conv1D, kl.Conv2D, kl.Conv3D)):
        # kernel (k..., in_channels / groups, filters): per output position, one MAC per kernel weight.
        return _positions(layer.output.shape, data_format) * math.prod(layer.kernel.shape)
    if isinstance(layer, kl.Dense):
        # kernel (in, units); on inputs (batch, ..., in) it applies once per leading position.
        return math.prod(int(d) for d in layer.output.shape[1:-1]) * math.prod(layer.kernel.shape)
    if isinstance(layer, kl.Bidirectional):
        steps = int(layer.input.shape[1])
        return _recurrent_macs(layer.forward_layer, steps) + _recurrent_macs(layer.backward_layer, steps)
    if isinstance(layer, (kl.SimpleRNN, kl.LSTM, kl.GRU)):
        return _recurrent_macs(layer, int(layer.input.shape[1]))
    if isinstance(layer, kl.MultiHeadAttention):
        length = int(layer.output.shape[1])
        projections = sum(math.prod(dense.kernel.shape) for dense in
                          (layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense))
        return length * projections + 2 * length * length * layer.num_heads * layer.key_dim
    if isinstance(layer, kl.BatchNormalization):
        return math.prod(int(d) for d in layer.output.shape[1:])
    return 0


def _recurrent_macs(layer, steps: int) -> int:
    """A recurrent layer over `steps` time steps: its input kernel and its recurrent kernel at every step."""
    cell = layer.cell
    return steps * (math.prod(cell.kernel.shape) + math.prod(cell.recurrent_kernel.shape))
