"""Backend settings of a training process: threads, op determinism, precision policies, and the device it uses.

Each setting is applied here and read back from the backend, so what a run records (`dlbench.determinism`,
`dlbench.precision`, `dlbench.device`) is what was in force, on every Keras backend.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
JAX_DETERMINISM_FLAG = "--xla_gpu_deterministic_ops=true"


def backend_name() -> str:
    """The Keras backend this process will use, without importing Keras (KERAS_BACKEND, then keras.json)."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def prepare_environment(deterministic: bool) -> None:
    """Settings that must be in the environment before the backend is imported (call first in a worker).

    JAX reads XLA_FLAGS once, at start: GPU op determinism is asked for there when any run may need it.
    """
    if backend_name() == "jax" and deterministic:
        flags = os.environ.get("XLA_FLAGS", "")
        if JAX_DETERMINISM_FLAG not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {JAX_DETERMINISM_FLAG}".strip()
    import_backend()


def import_backend() -> None:
    """Import Keras and its backend without the C++ runtime's start-up lines (progress.quiet_stderr)."""
    import sys

    if "keras" in sys.modules:
        return
    from dlbench.progress import quiet_stderr

    with quiet_stderr():
        import keras  # noqa: F401


def configure(threads: int | None = None) -> None:
    """Process-wide thread settings; call before the first model is built."""
    import keras

    if keras.backend.backend() == "tensorflow" and threads:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        except RuntimeError:  # the runtime is already initialised: keep its settings
            pass
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        from dlbench.progress import quiet_stderr

        with quiet_stderr():  # starts the runtime now, without its lines about CUDA on a machine without it
            tf.config.list_logical_devices()


def set_determinism(on: bool) -> bool:
    """Ask for op determinism (or not) and return whether it is in force now.

    TensorFlow switches per call. JAX fixes it when the process starts (`prepare_environment`): XLA's GPU
    deterministic-ops flag, and on the CPU XLA's kernels are deterministic by construction. PyTorch switches per
    call (`torch.use_deterministic_algorithms`).
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        from tensorflow.python.framework import config as tf_config

        if on and not tf_config.is_op_determinism_enabled():
            tf_config.enable_op_determinism()
        elif not on and tf_config.is_op_determinism_enabled():
            tf_config.disable_op_determinism()
        return bool(tf_config.is_op_determinism_enabled())
    if backend == "jax":
        import jax

        if jax.devices()[0].platform == "cpu":
            return True
        return JAX_DETERMINISM_FLAG in os.environ.get("XLA_FLAGS", "")
    if backend == "torch":
        import torch

        torch.use_deterministic_algorithms(on, warn_only=True)
        return bool(torch.are_deterministic_algorithms_enabled())
    return False


@contextlib.contextmanager
def precision(policy: str) -> Iterator[None]:
    """Build models under a Keras dtype policy (`float32`, `mixed_float16`, `mixed_bfloat16`); restored after."""
    import keras

    if policy not in PRECISIONS:
        raise ValueError(f"unknown precision {policy!r}; allowed: {', '.join(PRECISIONS)}")
    before = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def float32_outputs(model):
    """The model with float32 outputs: under a mixed policy the output layer must not compute in 16 bits.

    Our builders make their output layers float32 themselves; a model whose outputs are still 16-bit (e.g. a
    keras.applications original) gets a float32 cast appended.
    """
    import keras

    outputs = model.outputs if hasattr(model, "outputs") and model.outputs else None
    if not outputs or all(str(o.dtype) == "float32" for o in outputs):
        return model
    cast = [keras.layers.Activation("linear", dtype="float32", name=f"output_float32_{i}")(o)
            for i, o in enumerate(outputs)]
    return keras.Model(model.inputs, cast[0] if len(cast) == 1 else cast, name=model.name)


def device() -> str:
    """The accelerator the backend trains on, e.g. 'GPU:NVIDIA H100 x1' or 'CPU'."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"GPU:{details.get('device_name', gpus[0].name)} x{len(gpus)}"
        return "CPU"
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        return f"{d.platform.upper()}:{getattr(d, 'device_kind', '')} x{len(jax.devices())}"
    return backend


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))
