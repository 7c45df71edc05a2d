"""A model of your own for dlbench: a deep MLP whose blocks can add their input back (a skip connection).

dlbench calls `build(info, **hyperparameters)`. `info` describes the data (`info.input_shape`,
`info.num_classes`); every keyword parameter below, with its default and type hint, is a hyperparameter a spec
may fix, search or ablate (`dlbench list models` shows this file once a spec names it).
"""

from typing import Annotated, Literal

import keras
import pydantic


def build(info, width: Annotated[int, pydantic.Field(ge=1)] = 64, depth: Annotated[int, pydantic.Field(ge=1)] = 8,
          residual: bool = True, activation: Literal["relu", "tanh", "sigmoid"] = "sigmoid",
          dropout: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.0):
    """Residual MLP (plugin example): depth x Dense(width) blocks, each added to its input when residual."""
    inputs = keras.Input(shape=info.input_shape, name="inputs")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(width, name="stem")(x)  # projects the input to the blocks' width
    for i in range(depth):
        h = keras.layers.Dense(width, activation=activation, name=f"block_{i}")(x)
        h = keras.layers.Dropout(dropout, name=f"dropout_{i}")(h)
        x = keras.layers.Add(name=f"skip_{i}")([x, h]) if residual else h
    outputs = keras.layers.Dense(info.num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="residual_mlp")
