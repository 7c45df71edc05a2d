"""Calibration of the shared problem's target: the good configuration vs random configurations, plain Keras.

The target (val_accuracy >= 0.99 on the fixed digits split) is only meaningful if a good configuration reaches it
reliably and a random one rarely does. Trains the good configuration with --seeds seeds and --random random
configurations from the search space (30 epochs, best epoch's val_accuracy), and reports how many reach it.
Run: python bench/calibrate.py [--seeds 3] [--random 12]   (docs/benchmarks.md: --seeds 5 --random 150)
"""

from __future__ import annotations

import argparse
import math

from _common import GOOD, MAX_EPOCHS, TARGET


def best_val(data, cfg: dict, seed: int) -> float:
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(data.input_shape)])
    for _ in range(cfg["depth"]):
        model.add(keras.layers.Dense(cfg["width"], activation=cfg["activation"]))
        if cfg["dropout"] > 0:
            model.add(keras.layers.Dropout(cfg["dropout"]))
    model.add(keras.layers.Dense(data.num_classes, activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(cfg["learning_rate"]), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(data.train.x, data.train.y, batch_size=cfg["batch_size"], epochs=MAX_EPOCHS,
                     validation_data=(data.val.x, data.val.y), verbose=0)
    return max(hist.history["val_accuracy"])


def random_config(rng) -> dict:
    return {"learning_rate": float(10 ** rng.uniform(math.log10(1e-4), math.log10(3e-2))),  # log-uniform
            "width": int(rng.choice([32, 64, 128, 256])), "depth": int(rng.integers(1, 5)),
            "dropout": float(rng.uniform(0, 0.5)), "activation": str(rng.choice(["relu", "sigmoid"])),
            "batch_size": int(rng.choice([32, 64, 128]))}


def run(seeds: int = 3, randoms: int = 12) -> str:
    import numpy as np

    from dlbench import data as D

    digits = D.load("digits")
    good = [best_val(digits, GOOD, s) for s in range(seeds)]
    rng = np.random.default_rng(0)
    rand = [(cfg, best_val(digits, cfg, 100 + i)) for i, cfg in enumerate(random_config(rng) for _ in range(randoms))]
    hits = sum(v >= TARGET for _, v in rand)
    best_random = max(v for _, v in rand)
    from scipy.stats import beta

    upper = float(beta.ppf(0.95, hits + 1, randoms - hits))  # one-sided 95% Clopper-Pearson bound of the hit rate
    return "\n".join([
        "## Calibration of the target",
        "",
        f"Plain Keras, {MAX_EPOCHS} epochs, best epoch's val_accuracy on the fixed digits split (target {TARGET}).",
        "",
        f"- Good configuration ({', '.join(f'{k} {v}' for k, v in GOOD.items())}): "
        f"{', '.join(f'{v:.3f}' for v in good)}; **{sum(v >= TARGET for v in good)} of {seeds} seeds reach it**.",
        f"- {randoms} random configurations from the search space (seeded): **{hits} of {randoms} reach it**; "
        f"best {best_random:.3f}, median {float(np.median([v for _, v in rand])):.3f}; the chance that a random "
        f"configuration reaches the target is at most {upper:.1%} (one-sided 95% Clopper-Pearson bound).",
        f"- Best epoch's val_accuracy of the random configurations, sorted: "
        f"{', '.join(f'{v:.3f}' for v in sorted((v for _, v in rand), reverse=True)[:10])}, ...",
    ])


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--random", type=int, default=12)
    a = p.parse_args()
    print(run(a.seeds, a.random))
