"""Search efficiency: time-to-target and trials-to-target on the shared digits MLP problem.

Methods, each in its own fresh process (so no method inherits another's warm caches), interleaved seed by seed:
  dlbench        dlbench with its defaults (TPE + Hyperband pruner, journal storage, MLflow SQLite logging)
  kt-random      KerasTuner RandomSearch on the same space
  kt-hyperband   KerasTuner Hyperband (max_epochs 30, factor 3)
  optuna-mlflow  the script a user writes today: Optuna TPE + MedianPruner + KerasPruningCallback, Optuna SQLite
                 storage, MLflow logging by hand (params, per-epoch metrics) into a SQLite store
The clock starts after imports and data loading, just before the tuner/study is created, and stops at the first
epoch of any trial whose val_accuracy reaches the target. A run that has not reached it after --cap seconds is
censored: its time counts as "> cap". "Trials" counts model.fit calls (for Hyperband, each round is a trial).

Run: python bench/search.py [--seeds 3] [--cap 120]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from _common import ROOT, SEARCH_SPEC, TARGET, MAX_EPOCHS, median, tempdir, write_spec

METHODS = ("dlbench", "kt-random", "kt-hyperband", "optuna-mlflow")
MAX_TRIALS = 10_000  # never reached: every run ends at the target or at the cap
BUDGET = 60  # dlbench's trial budget: what a user would write for this space (sets TPE's start-up trials)


# === Child side: one method, one seed ===


class Watch:
    """Counts trials and epochs, stops the process at the target or at the cap, printing one JSON line."""

    def __init__(self, method: str, seed: int, cap: float):
        self.method, self.seed, self.cap = method, seed, cap
        self.trials = self.epochs = 0
        self.study = None  # the method's Optuna study, if it has one: how its trials ended is reported too
        self.start = time.perf_counter()
        self.lock = threading.Lock()
        threading.Thread(target=self._deadline, daemon=True).start()

    def _finish(self, reached: bool) -> None:
        with self.lock:
            seconds = time.perf_counter() - self.start
            print(json.dumps({"method": self.method, "seed": self.seed, "reached": reached, "seconds": seconds,
                              "trials": self.trials, "epochs": self.epochs, **self._study_summary()}), flush=True)
            os._exit(0)  # stop every library mid-flight: what happens after the target is not measured

    def _study_summary(self) -> dict:
        """How the study's trials ended: the epochs each pruned trial ran before it was stopped."""
        if self.study is None:
            return {}
        try:
            from optuna.trial import TrialState

            trials = self.study.get_trials(deepcopy=False)
            return {"complete": sum(t.state == TrialState.COMPLETE for t in trials),
                    "pruned_at": sorted(len(t.intermediate_values) for t in trials if t.state == TrialState.PRUNED)}
        except Exception as e:  # noqa: BLE001 - a summary must never cost the measurement
            return {"summary_error": str(e)}

    def _deadline(self) -> None:
        time.sleep(self.cap)
        self._finish(False)

    def trial_started(self) -> None:
        self.trials += 1

    def epoch_ended(self, logs: dict) -> None:
        self.epochs += 1
        if float(logs.get("val_accuracy", 0.0)) >= TARGET:
            self._finish(True)

    def keras_callback(self):
        import keras

        watch = self

        class Callback(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                watch.trial_started()

            def on_epoch_end(self, epoch, logs=None):
                watch.epoch_ended(logs or {})

        return Callback()


def _keras_mlp(data, lr, width, depth, dropout, activation):
    """The shared problem's model, as a user writes it."""
    import keras

    model = keras.Sequential([keras.Input(data.input_shape)])
    for _ in range(depth):
        model.add(keras.layers.Dense(width, activation=activation))
        if dropout > 0:
            model.add(keras.layers.Dropout(dropout))
    model.add(keras.layers.Dense(data.num_classes, activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


VARIANTS = {  # named settings other than dlbench's defaults: Hyperband min_resource, TPE start-up trials
    "previous": {"min_resource": 1, "startup": 10},  # the defaults before bench/CHANGES.md: 4 brackets x 10
    "hb-min1": {"min_resource": 1},
    "startup10": {"startup": 10},
}


def variant_settings(variant: str) -> dict:
    """A variant's settings: a name of VARIANTS, or `key=value` pairs joined by '+': pruner=<spec pruner>,
    sampler=<spec sampler>, startup=<TPE start-up trials>, min_resource=<Hyperband first rung> (e.g.
    `pruner=median+startup=10`)."""
    if variant in VARIANTS:
        return dict(VARIANTS[variant])
    out: dict = {}
    for part in filter(None, variant.split("+")):
        key, _, value = part.partition("=")
        if key not in ("pruner", "sampler", "startup", "min_resource") or not value:
            raise SystemExit(f"bad variant {variant!r}: use a name ({', '.join(VARIANTS)}) or key=value pairs "
                             "joined by '+' with keys pruner, sampler, startup, min_resource")
        out[key] = int(value) if key in ("startup", "min_resource") else value
    return out


def _patch(settings: dict) -> None:
    import optuna

    from dlbench import search

    if "min_resource" in settings:
        search.pruner = lambda exp: optuna.pruners.HyperbandPruner(
            min_resource=settings["min_resource"], max_resource=exp.budget.epochs, reduction_factor=3)
    if "startup" in settings:
        original = search.sampler_settings
        search.sampler_settings = lambda exp: {**original(exp), "n_startup_trials": settings["startup"]}


def run_dlbench(data, seed: int, cap: float, folder: str, variant: str | None = None) -> None:
    from dlbench import spaces, study

    settings = variant_settings(variant) if variant else {}
    _patch(settings)
    from dlbench.progress import Progress

    class WatchProgress(Progress):
        """dlbench's progress events are the hook: a new trial starts at its first epoch."""

        def epoch(self, item, epoch, logs, metric):
            if epoch == 0:
                watch.trial_started()
            watch.epoch_ended(logs)

    spec = write_spec(SEARCH_SPEC, folder, name=f"search-{seed}", trials=BUDGET,
                      pruner=settings.get("pruner", "hyperband"))
    if "sampler" in settings:
        spec.write_text(spec.read_text().replace('pruner = ', f'sampler = "{settings["sampler"]}"\npruner = ', 1))
    exp = spaces.load(spec)
    run_settings = study.Settings(storage=f"{folder}/studies", tracking_uri=f"sqlite:///{folder}/mlflow.db",
                                  progress=False)
    watch = Watch("dlbench" + (f":{variant}" if variant else ""), seed, cap)
    worker = study.Worker(exp, run_settings, progress=WatchProgress(enabled=False))
    watch.study = worker.studies[exp.arms[0].name]
    worker.tune(exp.arms[0])
    watch._finish(False)


def run_keras_tuner(data, seed: int, cap: float, folder: str, kind: str) -> None:
    import keras_tuner as kt

    class HyperMLP(kt.HyperModel):
        def build(self, hp):
            return _keras_mlp(data, hp.Float("learning_rate", 1e-4, 3e-2, sampling="log"),
                              hp.Choice("width", [32, 64, 128, 256]), hp.Int("depth", 1, 4),
                              hp.Float("dropout", 0.0, 0.5), hp.Choice("activation", ["relu", "sigmoid"]))

        def fit(self, hp, model, *args, **kwargs):
            return model.fit(*args, batch_size=hp.Choice("batch_size", [32, 64, 128]), **kwargs)

    watch = Watch(f"kt-{kind}", seed, cap)
    common = dict(objective="val_accuracy", seed=seed, directory=folder, project_name=kind, overwrite=True)
    if kind == "random":
        tuner = kt.RandomSearch(HyperMLP(), max_trials=MAX_TRIALS, **common)
    else:
        tuner = kt.Hyperband(HyperMLP(), max_epochs=MAX_EPOCHS, factor=3, hyperband_iterations=1000, **common)
    tuner.search(data.train.x, data.train.y, epochs=MAX_EPOCHS, validation_data=(data.val.x, data.val.y),
                 callbacks=[watch.keras_callback()], verbose=0)
    watch._finish(False)


def run_optuna_mlflow(data, seed: int, cap: float, folder: str) -> None:
    import keras
    import mlflow
    import optuna
    from optuna_integration import KerasPruningCallback

    watch = Watch("optuna-mlflow", seed, cap)
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    mlflow.set_experiment("hand-rolled")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(), storage=f"sqlite:///{folder}/optuna.db")
    watch.study = study

    def objective(trial):
        p = {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-2, log=True),
             "width": trial.suggest_categorical("width", [32, 64, 128, 256]),
             "depth": trial.suggest_int("depth", 1, 4),
             "dropout": trial.suggest_float("dropout", 0.0, 0.5),
             "activation": trial.suggest_categorical("activation", ["relu", "sigmoid"]),
             "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128])}
        with mlflow.start_run(run_name=f"trial-{trial.number}"):
            mlflow.log_params(p)
            model = _keras_mlp(data, p["learning_rate"], p["width"], p["depth"], p["dropout"], p["activation"])
            log = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: mlflow.log_metrics(logs, step=e))
            hist = model.fit(data.train.x, data.train.y, batch_size=p["batch_size"], epochs=MAX_EPOCHS,
                             validation_data=(data.val.x, data.val.y), verbose=0,
                             callbacks=[log, watch.keras_callback(), KerasPruningCallback(trial, "val_accuracy")])
            best = max(hist.history["val_accuracy"])
            mlflow.log_metric("best_val_accuracy", best)
        return best

    study.optimize(objective, n_trials=MAX_TRIALS)
    watch._finish(False)


def child(method: str, seed: int, cap: float) -> None:
    method, _, variant = method.partition(":")
    from dlbench.progress import quiet_libraries

    quiet_libraries()
    import logging

    import keras  # noqa: F401  (imports happen before the clock starts, for every method)
    import keras_tuner  # noqa: F401
    import mlflow  # noqa: F401
    import optuna
    import optuna_integration  # noqa: F401

    from dlbench import data as D

    optuna.logging.set_verbosity(logging.WARNING)
    data = D.load("digits")
    folder = tempdir(f"search-{method}-{seed}")
    if method == "dlbench":
        run_dlbench(data, seed, cap, folder, variant or None)
    elif method.startswith("kt-"):
        run_keras_tuner(data, seed, cap, folder, method[3:])
    else:
        run_optuna_mlflow(data, seed, cap, folder)


# === Parent side: interleave, collect, report ===


def _one(method: str, seed: int, cap: float) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, __file__, "--one", method, "--seed", str(seed), "--cap", str(cap)],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=cap + 300)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{method} seed {seed} printed no result:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def _fmt_time(r: dict, cap: float) -> str:
    return f"{r['seconds']:.0f}" if r["reached"] else f">{cap:.0f}"


def _ratio(ours: dict, theirs: dict) -> tuple[float, str]:
    """dlbench/other time ratio, with '<=' or '>=' when one side was censored at the cap."""
    r = ours["seconds"] / theirs["seconds"]
    if ours["reached"] and theirs["reached"]:
        return r, ""
    if ours["reached"]:
        return r, "<="  # the other would have needed longer than the cap
    if theirs["reached"]:
        return r, ">="
    return r, "?"


def ratio_ci(ratios: list[float], resamples: int = 10_000) -> tuple[float, float, float]:
    """The median of paired per-seed ratios and its 95% percentile-bootstrap CI (seeds resampled, seeded)."""
    import numpy as np

    r = np.log(np.asarray(ratios, dtype=float))
    rng = np.random.default_rng(0)
    boot = np.median(r[rng.integers(0, len(r), size=(resamples, len(r)))], axis=1)
    return float(np.exp(np.median(r))), float(np.exp(np.percentile(boot, 2.5))), float(np.exp(np.percentile(boot, 97.5)))


def run(seeds: int = 3, cap: float = 120.0, methods=METHODS, progress=print) -> str:
    results: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in range(seeds):
        order = list(methods[seed % len(methods):]) + list(methods[:seed % len(methods)])  # rotate: no fixed slot
        for m in order:
            r = _one(m, seed, cap)
            results[m].append(r)
            progress(f"  search: {m} seed {seed}: {'reached' if r['reached'] else 'censored'} "
                     f"in {r['seconds']:.0f} s, {r['trials']} trials, {r['epochs']} epochs")
    for rs in results.values():
        rs.sort(key=lambda r: r["seed"])
    lines = [
        "## Search efficiency: time and trials to reach val_accuracy >= 0.99",
        "",
        f"Shared digits MLP problem, {seeds} seeds per method, each run in a fresh process, methods interleaved "
        f"(order rotated per seed), cap {cap:.0f} s per run (a censored run shows `>{cap:.0f}`). Trials = "
        "`model.fit` calls started; epochs = epochs trained in all trials.",
        "",
        "| method | reached | time per seed (s) | median s | trials per seed | median trials | median epochs |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, rs in results.items():
        times = ", ".join(_fmt_time(r, cap) for r in rs)
        reached = sum(r["reached"] for r in rs)
        med = median([r["seconds"] for r in rs])
        med_s = f"{med:.0f}" if reached > len(rs) / 2 else f">{cap:.0f}" if reached == 0 else f"~{med:.0f}"
        lines.append(f"| {m} | {reached}/{len(rs)} | {times} | {med_s} | {', '.join(str(r['trials']) for r in rs)} "
                     f"| {median([r['trials'] for r in rs]):.0f} | {median([r['epochs'] for r in rs]):.0f} |")
    pruned = {m: [e for r in rs for e in r.get("pruned_at", [])] for m, rs in results.items() if any("pruned_at" in r
                                                                                                  for r in rs)}
    if pruned:
        lines += ["", "How the trials of the Optuna-based methods ended (all seeds pooled; a pruned trial's epochs are "
                  "those it trained before it was stopped):", ""]
        for m, eps in pruned.items():
            complete = sum(r.get("complete", 0) for r in results[m])
            dist = (f"stopped after a median of {median(eps):.0f} epochs (quartiles {sorted(eps)[len(eps) // 4]}-"
                    f"{sorted(eps)[3 * len(eps) // 4]}), {sum(e <= 4 for e in eps)} of them within 4 epochs"
                    if eps else "none pruned")
            lines.append(f"- {m}: {complete} trials ran all {MAX_EPOCHS} epochs; pruned: {len(eps)}, {dist}")
    if "dlbench" in results:
        lines += ["", "Per-seed ratios, dlbench (today's defaults) / other, as medians over the seeds with a 95% "
                  "percentile-bootstrap CI (10,000 resamples of the seeds). A censored run counts at the cap, so a "
                  "ratio involving one is a bound (`<=`: the other method was censored in that seed). Below 1: "
                  "dlbench's defaults are faster.", ""]
        goals = {"kt-random": 0.5, "kt-hyperband": 0.5, "optuna-mlflow": 0.7}
        for m in methods:
            if m == "dlbench":
                continue
            pairs = [_ratio(a, b) for a, b in zip(results["dlbench"], results[m])]
            time_ci = ratio_ci([r for r, _ in pairs])
            epochs_ci = ratio_ci([a["epochs"] / max(1, b["epochs"]) for a, b in zip(results["dlbench"], results[m])])
            per = ", ".join(f"{mark}{r:.2f}" for r, mark in pairs)
            lines.append(f"- vs {m}: time ratio **{time_ci[0]:.2f}** [{time_ci[1]:.2f}, {time_ci[2]:.2f}] (per seed "
                         f"{per}); epochs ratio {epochs_ci[0]:.2f} [{epochs_ci[1]:.2f}, {epochs_ci[2]:.2f}]. "
                         f"Goal <= {goals.get(m, 1.0)}.")
    lines += ["", "Raw results (JSON lines):", "", "```"]
    lines += [json.dumps(r) for rs in results.values() for r in rs]
    lines.append("```")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--cap", type=float, default=120.0, help="seconds per run before it is censored")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated; dlbench:VARIANT tries other defaults ({', '.join(VARIANTS)})")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        child(a.one, a.seed, a.cap)
    else:
        print(run(a.seeds, a.cap, tuple(a.methods.split(","))))
