"""Gradient norms: what logging `grad_norm/<layer>` costs a training run, by `grad_norm_every` (0 = off, 1 = every
epoch, 5, and the default "auto", which is every 5th epoch on digits' 1,197 training rows), on the benchmark's digits MLP, a deep sigmoid MLP (the case the norms are for) and a small CNN. The
settings are interleaved in each round, so drifts of the machine hit them alike; the report gives the median
training time of each setting as a ratio to `grad_norm_every = 0`.
Run: python bench/gradnorms.py [--rounds 5] [--epochs 30]
"""

from __future__ import annotations

import argparse
import time

from _common import GOOD, median

EVERY = (0, 1, 5, "auto")


def _problems():
    from dlbench import data
    from dlbench.models import cnn, mlp

    digits = data.load("digits", {})
    images = data.load("digits", {"shape": "image"})
    return {
        f"digits MLP {GOOD['depth']}x{GOOD['width']} relu": (
            digits, lambda: mlp.build(mlp.HParams(depth=GOOD["depth"], width=GOOD["width"], dropout=GOOD["dropout"]),
                                      digits)),
        "deep sigmoid MLP 10x100": (
            digits, lambda: mlp.build(mlp.HParams(depth=10, width=100, activation="sigmoid"), digits)),
        "CNN 2 blocks on 8x8 digits": (images, lambda: cnn.build(cnn.HParams(blocks=2, filters=16, dense=64), images)),
    }


def _fit(problem, every: int, epochs: int, seed: int) -> float:
    from dlbench import train

    info, build = problem
    hp = train.TrainHParams(learning_rate=GOOD["learning_rate"], batch_size=GOOD["batch_size"],
                            grad_norm_every=every, checkpoint_every=0)
    start = time.perf_counter()
    train.fit(build, info, hp, epochs=epochs, seed=seed, monitor="val_accuracy")
    return time.perf_counter() - start


def run(rounds: int, epochs: int) -> str:
    rows = []
    for name, problem in _problems().items():
        _fit(problem, 1, 2, seed=0)  # warm-up: imports, first trace
        times: dict = {e: [] for e in EVERY}
        for r in range(rounds):
            for every in (EVERY if r % 2 == 0 else EVERY[::-1]):
                times[every].append(_fit(problem, every, epochs, seed=r))
        off = median(times[0])
        rows.append(f"| {name} | {off:.2f} s | " + " | ".join(f"{median(times[e]) / off:.3f}" for e in EVERY[1:]) + " |")
    return "\n".join([
        "## Gradient norms (`grad_norm_every`)",
        "",
        f"Command: `python bench/gradnorms.py --rounds {rounds} --epochs {epochs}`. Median training time over "
        f"{rounds} interleaved rounds of {epochs} epochs, as a ratio to no gradient norms (one backward pass on "
        "256 fixed training rows per logged epoch).",
        "",
        "| model | time without norms | every epoch | every 5 epochs | auto (the default) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
    ])


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=30)
    a = p.parse_args()
    print(run(a.rounds, a.epochs))
