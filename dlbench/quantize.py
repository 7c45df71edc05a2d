"""Post-training quantization of a trained classifier, and what it buys: size, CPU latency per example, accuracy.

A seed repeat whose spec sets `quantize` (`none`, `float16` or `int8`; training is unchanged) measures its trained
float model and, unless `none`, a quantized copy of it (`measure`). Which tool quantizes depends on the layers:

- "keras" path: every layer that holds weights is Dense, EinsumDense or Embedding (e.g. `mlp`). Keras 3's own
  `Model.quantize("int8")` covers exactly these layers: int8 kernels with one scale per output unit, inputs quantized
  on the fly per example (Keras 3.15 has no float16 mode, so `float16` is a copy of the model under the "float16"
  dtype policy: weights stored and computed in half precision). Runs on every Keras backend. Size: the bytes of the
  model's variables. Latency: `predict_on_batch` on one example.
- "tflite" path: the model has convolutions (Conv1D/2D/3D, DepthwiseConv, SeparableConv; e.g. `cnn`, `mobilenet`),
  whose `quantize` Keras 3.15 does not implement (they would stay float). TensorFlow Lite's converter quantizes
  them: `float16` stores the weights in float16 (computed in float32 on CPUs), `int8` is full-integer quantization
  of weights and activations, its activation ranges calibrated on a representative dataset of `CALIBRATION_ROWS`
  training examples (never validation or test). Needs the TensorFlow backend. Size: the bytes of the .tflite file.
  Latency: the TFLite interpreter (one thread) on one example. The float model is converted to a float32 .tflite
  as well, so float and quantized are timed in the same runtime.

Granularity (`quantize_granularity`): `per_channel` (default: one scale per output channel) or `per_tensor` (one
per weight tensor). TF 2.21's converter offers per-tensor only through the private attribute
`_experimental_disable_per_channel` (besides `_experimental_disable_per_channel_quantization_for_dense_layers`,
dense layers only); it applies to `int8` (float16 has no scales). Keras's int8 Dense has one scale per output unit
and no per-tensor mode, so `per_tensor` is refused on the keras path.

Refused before training (`check`): recurrent layers (Keras cannot quantize their cells, and TFLite needs its
unrolled-LSTM special cases), layers of other kinds holding weights, tasks other than classification, and the
tflite path on a backend other than TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
import warnings
from typing import Any, Callable, Iterator

import numpy as np

from dlbench import runtime
from dlbench.spec import Experiment, SpecError

CALIBRATION_ROWS = 200  # training examples that calibrate int8 activation ranges (TFLite representative dataset)
# Latency: warm-up calls, then REPEATS timings of NUMBER calls each at batch size 1; the median per example.
WARMUP, REPEATS, NUMBER = 20, 7, 50
KERAS_LAYERS = ("Dense", "EinsumDense", "Embedding", "ReversibleEmbedding")  # what Keras's quantize covers
TFLITE_LAYERS = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
                 "SeparableConv2D")  # weighted layers only the TFLite path quantizes
RECURRENT = ("SimpleRNN", "LSTM", "GRU", "Bidirectional", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
# Layers with weights that quantization leaves alone (normalisation: folded into convolutions by TFLite).
UNQUANTIZED = ("BatchNormalization", "LayerNormalization")


class Unsupported(ValueError):
    """The model cannot be quantized; the message says why."""


def _layers(model) -> Iterator[Any]:
    """Every layer, nested models walked through (their own layers, not the model itself)."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers and type(layer).__name__ not in RECURRENT:
            yield from _layers(layer)
        else:
            yield layer


def path(model) -> str:
    """"keras" when Keras's quantize covers every weighted layer, "tflite" when there are convolutions.

    Raises:
        Unsupported: recurrent layers, or weighted layers of another kind (named).
    """
    kinds = {type(layer).__name__ for layer in _layers(model) if layer.weights}
    recurrent = sorted(kinds & set(RECURRENT))
    if recurrent:
        raise Unsupported(f"its recurrent layers ({', '.join(recurrent)}) cannot be quantized: Keras's quantize "
                          "skips them and TFLite's converter needs special-cased LSTMs")
    other = sorted(kinds - set(KERAS_LAYERS) - set(TFLITE_LAYERS) - set(UNQUANTIZED))
    if other:
        raise Unsupported(f"its layers {', '.join(other)} are neither Keras-quantizable (Dense, EinsumDense, "
                          "Embedding) nor convolutions that TFLite's converter quantizes")
    return "tflite" if kinds & set(TFLITE_LAYERS) else "keras"


# === Spec check ===


def _written_at(exp: Experiment, arm, name: str) -> str:
    """Where the arm's value of `name` is written: its own section, else [search], else [fixed]."""
    for section, values in ((f"arms.{arm.name}", arm.params), ("search", exp.search), ("fixed", exp.fixed)):
        if name in values:
            return f"{section}.{name}"
    return name


def _values(value: Any, default: str) -> tuple:
    if value is None:
        return (default,)
    return tuple(getattr(value, "choices", (value,)))


def check(exp: Experiment, entries: dict[str, Any], info, hparams_of: Callable[[Any], Any]) -> None:
    """Refuse, before training, a `quantize` the arm's model, task or Keras backend (runtime.backend_name) cannot
    honour.

    Args:
        exp: the experiment.
        entries: arm name -> its model's registry entry (models.Entry).
        info: the dataset's DatasetInfo.
        hparams_of: arm -> its model HParams (the first value of each searched parameter); the model is built
            once from them, and only for arms that quantize.

    Raises:
        SpecError: naming the arm's `quantize` (or `quantize_granularity`) field and why.
    """
    for arm in exp.arms:
        params = exp.params_for(arm)
        modes = set(_values(params.get("quantize"), "none")) - {"none"}
        if not modes:
            continue
        field, model, entry = _written_at(exp, arm, "quantize"), exp.model_for(arm), entries[arm.name]
        task, backend = entry.task_for(info.task), runtime.backend_name()
        if task != "classification":
            raise SpecError(exp.path, field, f"model {model!r} trains for {task} here; quantize measures the "
                            "quantized model's test accuracy, so it applies to classifiers only")
        try:
            route = path(entry.build(hparams_of(arm), info))
        except Unsupported as e:
            raise SpecError(exp.path, field, f"model {model!r} cannot be quantized: {e}") from None
        if route == "tflite" and backend != "tensorflow":
            raise SpecError(exp.path, field, f"model {model!r} has convolutions, which only TensorFlow Lite's "
                            f"converter quantizes (Keras's quantize covers Dense/EinsumDense/Embedding), and it "
                            f"needs the TensorFlow backend, not {backend!r}: run with KERAS_BACKEND=tensorflow")
        if route == "keras" and "per_tensor" in _values(params.get("quantize_granularity"), "per_channel"):
            raise SpecError(exp.path, _written_at(exp, arm, "quantize_granularity"), f"model {model!r} is "
                            "quantized by Keras's quantize, whose int8 Dense has one scale per output unit and no "
                            "per-tensor mode; use per_channel (per_tensor applies to convolutional models, "
                            "quantized by TFLite)")


# === Measuring ===


def _latency_ms(call: Callable[[], Any]) -> float:
    """Median seconds per call (batch size 1) over REPEATS timings of NUMBER calls, after WARMUP calls, in ms."""
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(NUMBER):
            call()
        times.append((time.perf_counter() - start) / NUMBER)
    return 1e3 * statistics.median(times)


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=-1) == np.asarray(y).reshape(-1)))


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Hold back what the converter writes to stdout and stderr (C++ included): export notices, calibration
    chatter. Exceptions pass through with their messages."""
    import io
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no file descriptors 1 and 2 (some embedded interpreters): nothing to hold back
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # Python's own prints, wherever sys.stdout points
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


class _Keras:
    """The keras path: the model itself, and its quantized copy."""

    name = "keras"

    def __init__(self, model):
        self.model = model

    @staticmethod
    def nbytes(model) -> int:
        return int(sum(np.prod(v.shape) * np.dtype(str(v.dtype)).itemsize for v in model.weights))

    def quantized(self, mode: str, granularity: str, calibration: np.ndarray):
        import keras

        if mode == "float16":
            copy = keras.models.clone_model(self.model, clone_function=lambda layer: layer.__class__.from_config(
                {**layer.get_config(), "dtype": "float16"}))
            copy.set_weights([np.asarray(w).astype("float16") for w in self.model.get_weights()])
            return copy
        copy = keras.models.clone_model(self.model)
        copy.set_weights(self.model.get_weights())
        with warnings.catch_warnings():  # "Layer Activation does not have a `quantize` method": nothing to do
            warnings.simplefilter("ignore")
            copy.quantize("int8")
        return copy

    @staticmethod
    def predict(model, x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(x, batch_size=1024, verbose=0), dtype=np.float32)

    @staticmethod
    def latency(model, x1: np.ndarray) -> float:
        return _latency_ms(lambda: model.predict_on_batch(x1))


class _TFLite:
    """The tflite path: flatbuffers from TensorFlow Lite's converter, run by its interpreter."""

    name = "tflite"

    def __init__(self, model):
        self.model = model
        self.float_model = self.convert("none", "per_channel", None)

    def convert(self, mode: str, granularity: str, calibration: np.ndarray | None) -> bytes:
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_keras_model(self.model)
        if mode != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if mode == "int8":  # full integer: every op int8, float inputs and outputs (quantized at the edges)
            rows = calibration.astype(np.float32)
            converter.representative_dataset = lambda: ([rows[i:i + 1]] for i in range(len(rows)))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter._experimental_disable_per_channel = granularity == "per_tensor"  # noqa: SLF001 (see above)
        with _silenced(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")  # float inputs: fine
            return converter.convert()

    def quantized(self, mode: str, granularity: str, calibration: np.ndarray) -> bytes:
        return self.convert(mode, granularity, calibration)

    @staticmethod
    def nbytes(flatbuffer: bytes) -> int:
        return len(flatbuffer)

    @staticmethod
    def _interpreter(flatbuffer: bytes, batch: int):
        import tensorflow as tf

        with warnings.catch_warnings(), _silenced():  # deprecated in favour of LiteRT (not installed); its notices
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=1)
            inp = interpreter.get_input_details()[0]
            if batch != inp["shape"][0]:
                interpreter.resize_tensor_input(inp["index"], [batch, *inp["shape"][1:]])
            interpreter.allocate_tensors()
        return interpreter, inp["index"], interpreter.get_output_details()[0]["index"]

    def predict(self, flatbuffer: bytes, x: np.ndarray, chunk: int = 256) -> np.ndarray:
        out = []
        for start in range(0, len(x), chunk):
            rows = x[start:start + chunk].astype(np.float32)
            interpreter, i, o = self._interpreter(flatbuffer, len(rows))
            interpreter.set_tensor(i, rows)
            interpreter.invoke()
            out.append(np.array(interpreter.get_tensor(o), dtype=np.float32))
        return np.concatenate(out)

    def latency(self, flatbuffer: bytes, x1: np.ndarray) -> float:
        interpreter, i, _ = self._interpreter(flatbuffer, 1)
        interpreter.set_tensor(i, x1.astype(np.float32))
        return _latency_ms(interpreter.invoke)


def measure(model, data, mode: str, granularity: str = "per_channel", seed: int = 0) -> tuple[dict[str, float], str]:
    """The float model's size and latency, and (unless `mode` is "none") its quantized copy's size, latency and
    test accuracy, with how often the two predict the same class.

    Args:
        model: the trained keras.Model (left unchanged).
        data: its DatasetInfo; calibration rows come from `data.train`, test metrics from `data.test`.
        mode: "none", "float16" or "int8".
        granularity: "per_channel" or "per_tensor" (int8 on the tflite path).
        seed: picks the calibration rows.

    Returns:
        (metrics, the path used: "keras" or "tflite"). Metrics: model_bytes, latency_ms (ms per example at batch
        size 1, median), and with quantization quantized_bytes, quantized_latency_ms, quantized_test_accuracy and
        quantized_agreement (the fraction of test examples where the quantized model's class is the float one's).
    """
    import keras

    try:
        route = path(model)
    except Unsupported:
        if mode != "none":
            raise
        route = "keras"  # size and latency of a float model only: any model runs in Keras
    if route == "tflite" and keras.backend.backend() != "tensorflow":
        route = "keras"  # a float convolutional model off TensorFlow (check refuses to quantize it there)
    runner = _TFLite(model) if route == "tflite" else _Keras(model)
    float_model = runner.float_model if route == "tflite" else model
    x1 = np.asarray(data.test.x[:1])
    metrics = {"model_bytes": float(runner.nbytes(float_model)), "latency_ms": runner.latency(float_model, x1)}
    if mode == "none":
        return metrics, route
    rng = np.random.default_rng(seed)
    calibration = np.asarray(data.train.x)[rng.choice(len(data.train), min(CALIBRATION_ROWS, len(data.train)),
                                                      replace=False)]
    quantized = runner.quantized(mode, granularity, calibration)
    test_x = np.asarray(data.test.x)
    q_probs, f_probs = runner.predict(quantized, test_x), runner.predict(float_model, test_x)
    metrics.update(quantized_bytes=float(runner.nbytes(quantized)), quantized_latency_ms=runner.latency(quantized, x1),
                   quantized_test_accuracy=_accuracy(q_probs, data.test.y),
                   quantized_agreement=float(np.mean(q_probs.argmax(-1) == f_probs.argmax(-1))))
    return metrics, route
