"""Unsupervised pretraining: greedy layer-wise (denoising) autoencoders for an MLP, and the PCA baseline.

Greedy layer-wise pretraining (Hinton et al. 2006; Bengio et al. 2007; Vincent et al. 2010): hidden layer i of the
MLP is trained as the encoder of a one-layer autoencoder whose inputs are the outputs of the already pretrained
layers 0..i-1, on the training inputs without their labels; its encoder weights are then copied into the MLP,
which `train.fit` fine-tunes with the labels. Knows nothing of Optuna or MLflow: losses go out through a hook.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable

import numpy as np

from dlbench import recipe, train
from dlbench.models import autoencoder, mlp

# hook(layer, epoch, logs) after every pretraining epoch of hidden layer `layer` (0-based), logs = {"loss": ...}.
LayerHook = Callable[[int, int, dict[str, float]], None]


@dataclasses.dataclass
class PretrainResult:
    losses: dict[int, list[float]]  # hidden layer -> its autoencoder's training loss per epoch
    weights: dict[int, tuple[np.ndarray, np.ndarray]]  # hidden layer -> (kernel, bias) copied into its Dense
    rows: int  # input rows the autoencoders were trained on
    seconds: float


def applies(hp: Any) -> bool:
    """Whether a model's hyperparameters ask for pretraining (only the MLP has it)."""
    return isinstance(hp, mlp.HParams) and hp.pretrain != "none"


def unlabeled_inputs(info) -> np.ndarray:
    """What pretraining may see: the inputs of every training-split row (labeled and unlabeled), no labels.

    Validation and test rows are never included: `DatasetInfo.unlabeled` holds training rows only.
    """
    return np.concatenate([info.train.x] + ([info.unlabeled.x] if info.unlabeled is not None else []))


def layer_autoencoder(hp: mlp.HParams, bounded: bool) -> autoencoder.HParams:
    """The one-hidden-layer autoencoder that pretrains an MLP hidden layer.

    Its encoder (`code`) has the layer's units, activation and initializer; the decoder is tied (Vincent et al.
    2010). For inputs in [0, 1] (`bounded`: pixels in [0, 1] for the first layer, sigmoid units below for the
    others) the decoder is a sigmoid with cross-entropy loss, as in Bengio et al. 2007 and Vincent et al. 2010;
    otherwise (ReLU, tanh units) it is linear with squared error. "dae" masks a fraction `pretrain_noise` of the
    inputs while training; the targets stay clean.
    """
    return autoencoder.HParams(
        depth=1, code=hp.width, activation=hp.activation, output_activation="sigmoid" if bounded else "linear",
        tied=True, loss="binary_crossentropy" if bounded else "mse",
        noise="masking" if hp.pretrain == "dae" else "none", noise_level=hp.pretrain_noise, init=hp.init)


def greedy_layerwise(model, hp: mlp.HParams, x: np.ndarray, train_hp: train.TrainHParams, *, seed: int,
                     hook: LayerHook | None = None) -> PretrainResult:
    """Pretrain the hidden layers of a freshly built MLP in place, bottom up.

    Each layer's autoencoder is trained for `hp.pretrain_epochs` epochs with the run's optimizer kind
    (`train_hp.optimizer`: plain SGD in the classic setting, Adam in the modern one) at
    `hp.pretrain_learning_rate`, in batches of `train_hp.batch_size`, on `x` passed through the layers below
    (in inference mode: dropout off).

    Args:
        model: an MLP built by `mlp.build(hp, ...)`; its hidden layers (`mlp.hidden_layers`) change in place.
        hp: its hyperparameters; `hp.pretrain` is "ae" or "dae".
        x: unlabeled inputs in the model's input shape (see `unlabeled_inputs`).
        train_hp: the run's training settings (optimizer kind, momentum, batch size).
        seed: run seed; fixes the autoencoders' initial weights, the data order and the noise.
        hook: called as hook(layer, epoch, logs) after every epoch.

    Returns:
        The losses per layer and epoch, the weights copied into the MLP, the rows used and the time taken.

    Raises:
        Diverged: an autoencoder's loss became NaN or infinite.
    """
    import keras

    if not applies(hp):
        raise ValueError(f"pretrain must be 'ae' or 'dae'; got {hp.pretrain!r}")
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    # The supervised optimizer at the pretraining rate, held constant: the run's schedule is for its own epochs.
    opt_hp = dataclasses.replace(train_hp, learning_rate=hp.pretrain_learning_rate, lr_schedule="constant",
                                 warmup_epochs=0, lr_step_epochs=None)
    h = np.asarray(x, dtype="float32").reshape(len(x), -1)
    result = PretrainResult({}, {}, len(h), 0.0)
    inputs_in_unit_interval = bool(h.min() >= 0.0 and h.max() <= 1.0)
    for i, hidden in enumerate(mlp.hidden_layers(model, hp.depth)):
        # Layer 0 sees the data; the layers above see the units below, in (0, 1) only if they are sigmoids.
        ae_hp = layer_autoencoder(hp, bounded=inputs_in_unit_interval if i == 0 else hp.activation == "sigmoid")
        ae = autoencoder.build_for_shape(ae_hp, (h.shape[1],), name=f"pretrain_{i}")
        ae.compile(optimizer=recipe.optimizer(opt_hp), loss=ae_hp.loss,
                   steps_per_execution=train.STEPS_PER_EXECUTION)
        losses = result.losses.setdefault(i, [])

        def on_epoch_end(epoch: int, logs: dict | None, layer: int = i, losses: list = losses) -> None:
            logs = {k: float(v) for k, v in (logs or {}).items()}
            losses.append(logs["loss"])
            if hook is not None:
                hook(layer, epoch, logs)
            if not math.isfinite(logs["loss"]):
                raise train.Diverged(epoch, {f"pretrain_layer_{layer}_{k}": v for k, v in logs.items()})

        ae.fit(h, h, batch_size=train_hp.batch_size, epochs=hp.pretrain_epochs, shuffle=True, verbose=0,
               callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)])
        kernel, bias = ae.get_layer("code").get_weights()
        hidden.dense.set_weights([kernel, bias])
        result.weights[i] = (kernel, bias)
        below = keras.Model(model.input, hidden.last.output)
        h = np.asarray(keras.ops.convert_to_numpy(below(x, training=False)), dtype="float32")
    result.seconds = time.perf_counter() - start
    return result


def pca_reconstruction_error(train_x: np.ndarray, eval_x: np.ndarray, k: int) -> float:
    """Mean squared error of reconstructing `eval_x` from its first `k` principal components (fitted on `train_x`).

    The optimum a linear autoencoder with a k-unit code and squared error can reach on the training data
    (Baldi & Hornik 1989): it learns the same subspace, though not the same basis.
    """
    from sklearn.decomposition import PCA

    a, b = train_x.reshape(len(train_x), -1), eval_x.reshape(len(eval_x), -1)
    pca = PCA(n_components=k, svd_solver="full").fit(a)
    return float(np.mean((pca.inverse_transform(pca.transform(b)) - b) ** 2))
