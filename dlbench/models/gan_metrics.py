"""How good a generator's samples are, without downloaded networks.

On a known mixture of Gaussians (data `ring8`, `grid25`), the standard counts of the mode-collapse literature
(Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN):
  - a sample is *high quality* when it lies within 3 standard deviations of its nearest mode;
  - `high_quality` is the fraction of high-quality samples;
  - `modes` is the number of modes that at least MODE_MIN_SHARE of the samples (PacGAN's 20 of 2,500 for a
    25-mode grid) fall near as high-quality samples.

On labelled data (digit images, flat or not), a small classifier (the *judge*) that dlbench trains once on the
dataset's own training split and caches (CACHE_ENV; its test accuracy is logged beside the scores) stands in for
the Inception network of the originals:
  - `fid`: the Frechet distance between Gaussians fitted to the judge's penultimate features of the samples and
    of the real split (Heusel et al. 2017's FID with a small judge; lower is better; not comparable with
    published FIDs);
  - `score`: exp(E_x KL(p(y|x) || p(y))) over the samples (Salimans et al. 2016's Inception Score with the
    judge; 1 to the number of classes, higher is better).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

CACHE_ENV = "DLBENCH_CACHE"  # folder of cached judges; default ~/.cache/dlbench
SAMPLES = 2500  # generated points per evaluation of a 2-D generator (VEEGAN, PacGAN)
IMAGE_SAMPLES = 1000  # generated images per evaluation against the judge
MODE_MIN_SHARE = 20 / 2500
# The metrics a GAN may produce besides its losses, and the data each needs.
MIXTURE_METRICS = ("modes", "high_quality")
JUDGE_METRICS = ("fid", "score")


def mode_metrics(samples: np.ndarray, modes: np.ndarray, std: float) -> dict[str, float]:
    """`modes` covered and the `high_quality` fraction of `samples` (n, d) against the mixture's means (k, d)."""
    distances = np.linalg.norm(samples[:, None, :] - modes[None, :, :], axis=-1)
    nearest = distances.argmin(axis=1)
    good = distances[np.arange(len(samples)), nearest] <= 3 * std
    counts = np.bincount(nearest[good], minlength=len(modes))
    return {"modes": float(np.sum(counts >= MODE_MIN_SHARE * len(samples))), "high_quality": float(good.mean())}


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted to feature rows a and b."""
    from scipy import linalg

    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # collapsed samples give singular covariances: handled below
        warnings.simplefilter("ignore")
        root = linalg.sqrtm(s_a @ s_b)
        if not np.isfinite(root).all():  # regularise as the FID reference code does
            eps = np.eye(len(s_a)) * 1e-6
            root = linalg.sqrtm((s_a + eps) @ (s_b + eps))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * np.real(root)))


def classifier_score(probabilities: np.ndarray) -> float:
    """exp(mean KL(p(y|x) || p(y))) of class probabilities (n, classes)."""
    p = np.clip(probabilities, 1e-12, 1.0)
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


@dataclasses.dataclass
class Judge:
    """A classifier of a dataset's real examples: class probabilities and penultimate features of any inputs."""

    model: object  # keras.Model with outputs [probabilities, features]
    accuracy: float  # on the dataset's test split
    path: Path

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs, features = self.model.predict(x, batch_size=1024, verbose=0)
        return np.asarray(probs), np.asarray(features)


_JUDGES: dict[str, Judge] = {}


def _judge_model(input_shape: tuple[int, ...], classes: int):
    import keras

    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(256, activation="relu")(x)
    features = keras.layers.Dense(64, activation="relu", name="features")(x)
    probs = keras.layers.Dense(classes, activation="softmax", name="probabilities")(features)
    return keras.Model(inputs, [probs, features], name="judge")


def judge(info) -> Judge:
    """The dataset's judge: loaded from the cache, or trained (seed 0, 40 epochs of Adam on the training split; the
    weights of the best validation epoch) and cached. A cache entry is keyed by the data itself."""
    import keras

    digest = hashlib.sha256()
    for part in (info.train.x, info.train.y, info.val.x, info.val.y):
        digest.update(np.ascontiguousarray(part).tobytes())
    key = f"{info.name}-{digest.hexdigest()[:16]}"
    if key in _JUDGES:
        return _JUDGES[key]
    folder = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dlbench") / "judges"
    path = folder / f"{key}.npz"
    model = _judge_model(tuple(info.input_shape), info.num_classes)
    if path.exists():
        stored = np.load(path)
        model.set_weights([stored[f"w{i}"] for i in range(len(model.weights))])
        accuracy = float(json.loads((folder / f"{key}.json").read_text())["test_accuracy"])
    else:
        keras.utils.set_random_seed(0)
        trainer = keras.Model(model.inputs, model.outputs[0])
        trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                        metrics=["accuracy"])
        best = {"accuracy": -1.0, "weights": None}  # the best validation epoch's weights, kept in memory

        def keep(epoch, logs):
            if logs["val_accuracy"] > best["accuracy"]:
                best.update(accuracy=logs["val_accuracy"], weights=trainer.get_weights())

        trainer.fit(info.train.x, info.train.y, validation_data=(info.val.x, info.val.y), epochs=40, batch_size=64,
                    verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=keep)])
        trainer.set_weights(best["weights"])
        accuracy = float(trainer.evaluate(info.test.x, info.test.y, verbose=0, return_dict=True)["accuracy"])
        tmp = folder / f"{key}.{os.getpid()}.npz"
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
        (folder / f"{key}.json").write_text(json.dumps({"test_accuracy": accuracy, "dataset": info.name}))
        os.replace(tmp, path)  # whole files only: another worker may be reading
    _JUDGES[key] = Judge(model, accuracy, path)
    return _JUDGES[key]


def available(metric: str, info) -> str | None:
    """Why a GAN cannot report `metric` (a MIXTURE_METRICS or JUDGE_METRICS name) on this dataset, or None."""
    if metric in MIXTURE_METRICS and info.modes is None:
        return (f"{metric!r} counts samples near the modes of a known mixture; dataset {info.name!r} has none: "
                "use ring8 or grid25, or fid/score on labelled images")
    if metric in JUDGE_METRICS and (info.modes is not None or info.task != "classification"):
        why = "a mixture of known modes (use modes or high_quality)" if info.modes is not None else \
            f"a {info.task} task without class labels"
        return f"{metric!r} needs a classifier of the real data's classes; dataset {info.name!r} is {why}"
    return None
