"""Shared building blocks (initializers, activations, dense blocks), written with keras.layers and keras.ops only."""

from __future__ import annotations

from typing import Literal

Activation = Literal["relu", "sigmoid", "tanh", "elu", "leaky_relu", "linear"]
# glorot_* and he_* are the modern scaled inits; the rest are the plain pre-2010 settings:
#   standard_uniform: U[-1/sqrt(fan_in), 1/sqrt(fan_in)], the "standard" heuristic of Glorot & Bengio (2010), eq. 1;
#   small_uniform: U[-0.05, 0.05];  small_normal: N(0, 0.01^2).
Initializer = Literal["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                      "standard_uniform", "small_uniform", "small_normal"]


def initializer(name: str, seed: int | None = None):
    import keras

    if name == "standard_uniform":
        # VarianceScaling uniform limit is sqrt(3 * scale / fan_in); scale = 1/3 gives 1/sqrt(fan_in).
        return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed)
    if name == "small_uniform":
        return keras.initializers.RandomUniform(-0.05, 0.05, seed=seed)
    if name == "small_normal":
        return keras.initializers.RandomNormal(stddev=0.01, seed=seed)
    return keras.initializers.get({"class_name": name, "config": {"seed": seed}})


def activation(name: str, layer_name: str | None = None):
    import keras

    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.01, name=layer_name)
    return keras.layers.Activation(name, name=layer_name)
