"""Search efficiency: time-to-target and trials-to-target on the shared MNIST-1D MLP problem (bench/_common.py).

Methods, each in its own fresh process (so no method inherits another's warm caches), interleaved seed by seed:
  dlbench        dlbench with its defaults (sampler and pruner as a spec leaves them, journal storage, MLflow SQLite
                 logging)
  dlbench:V      dlbench with variant V of its defaults, e.g. dlbench:sampler=random or dlbench:pruner=median
  kt-random      KerasTuner RandomSearch on the same space
  kt-hyperband   KerasTuner Hyperband (max_epochs 30, factor 3)
  optuna-mlflow  the script a user writes today: Optuna TPE + MedianPruner + KerasPruningCallback, Optuna SQLite
                 storage, MLflow logging by hand (params, per-epoch metrics) into a SQLite store
The clock starts after imports and data loading, just before the tuner/study is created, and stops at the first
epoch of any trial whose val_accuracy reaches the target. A run that has not reached it after --cap seconds is
censored: its time counts as "> cap". "Trials" counts model.fit calls (for Hyperband, each round is a trial).
With --jobs 2, two runs go side by side, each process pinned to its own CPU core (every method gets one core).

Run: python bench/search.py [--seeds 3] [--cap 120] [--jobs 1] [--methods dlbench,kt-random,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from _common import MAX_EPOCHS, ROOT, SEARCH_DATASET, SEARCH_SPEC, TARGET, keras_mlp, median, tempdir, write_spec

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


VARIANTS = {  # named settings other than dlbench's defaults: Hyperband min_resource, TPE start-up trials
    "previous": {"min_resource": 1, "startup": 10},  # the defaults before bench/CHANGES.md: 4 brackets x 10
    "hb-min1": {"min_resource": 1},
    "startup10": {"startup": 10},
    # the hand-rolled script's settings inside dlbench: Optuna's default TPE (10 random start-up trials, one
    # parameter at a time) and MedianPruner (5 start-up trials, pruning from the first epoch)
    "script": {"pruner": "median", "warmup": 0, "startup": 10, "tpe": "plain"},
}


KEYS = ("pruner", "sampler", "startup", "min_resource", "warmup", "tpe")


def variant_settings(variant: str) -> dict:
    """A variant's settings: a name of VARIANTS, or `key=value` pairs joined by '+': pruner=<spec pruner>,
    sampler=<spec sampler>, startup=<TPE start-up trials>, min_resource=<Hyperband first rung>, warmup=<epochs
    before the median pruner may stop a trial>, tpe=plain (univariate TPE without the constant liar) (e.g.
    `pruner=median+startup=10`)."""
    if variant in VARIANTS:
        return dict(VARIANTS[variant])
    out: dict = {}
    for part in filter(None, variant.split("+")):
        key, _, value = part.partition("=")
        if key not in KEYS or not value or (key == "tpe" and value != "plain"):
            raise SystemExit(f"bad variant {variant!r}: use a name ({', '.join(VARIANTS)}) or key=value pairs "
                             f"joined by '+' with keys {', '.join(KEYS)} (tpe=plain only)")
        out[key] = int(value) if key in ("startup", "min_resource", "warmup") else value
    return out


def _patch(settings: dict) -> None:
    import optuna

    from dlbench import search

    if "min_resource" in settings:
        search.pruner = lambda exp: optuna.pruners.HyperbandPruner(
            min_resource=settings["min_resource"], max_resource=exp.budget.epochs, reduction_factor=3)
    if "warmup" in settings:
        search.pruner = lambda exp: optuna.pruners.MedianPruner(n_startup_trials=5,
                                                                n_warmup_steps=settings["warmup"])
    original = search.sampler_settings
    changed = {"n_startup_trials": settings["startup"]} if "startup" in settings else {}
    if settings.get("tpe") == "plain":
        changed.update(multivariate=False, constant_liar=False)
    if changed:
        search.sampler_settings = lambda exp: {**original(exp), **changed}


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
            return keras_mlp(data, {"learning_rate": hp.Float("learning_rate", 1e-4, 3e-2, sampling="log"),
                                    "width": hp.Choice("width", [32, 64, 128, 256]), "depth": hp.Int("depth", 1, 4),
                                    "dropout": hp.Float("dropout", 0.0, 0.5),
                                    "activation": hp.Choice("activation", ["relu", "sigmoid"])})

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
            model = keras_mlp(data, p)
            log = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: mlflow.log_metrics(logs, step=e))
            hist = model.fit(data.train.x, data.train.y, batch_size=p["batch_size"], epochs=MAX_EPOCHS,
                             validation_data=(data.val.x, data.val.y), verbose=0,
                             callbacks=[log, watch.keras_callback(), KerasPruningCallback(trial, "val_accuracy")])
            best = max(hist.history["val_accuracy"])
            mlflow.log_metric("best_val_accuracy", best)
        return best

    study.optimize(objective, n_trials=MAX_TRIALS)
    watch._finish(False)


def child(method: str, seed: int, cap: float, core: int | None = None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})  # before any library starts its threads
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
    data = D.load(SEARCH_DATASET)
    folder = tempdir(f"search-{method}-{seed}")
    if method == "dlbench":
        run_dlbench(data, seed, cap, folder, variant or None)
    elif method.startswith("kt-"):
        run_keras_tuner(data, seed, cap, folder, method[3:])
    else:
        run_optuna_mlflow(data, seed, cap, folder)


# === Parent side: interleave, collect, report ===


def _one(method: str, seed: int, cap: float, core: int | None = None) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    pin = [] if core is None else ["--core", str(core)]
    out = subprocess.run([sys.executable, __file__, "--one", method, "--seed", str(seed), "--cap", str(cap), *pin],
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


def run(seeds: int = 3, cap: float = 120.0, methods=METHODS, jobs: int = 1, progress=print) -> str:
    results: dict[str, list[dict]] = {m: [] for m in methods}
    queue = [(m, seed) for seed in range(seeds)  # rotated per seed: no method holds a fixed slot
             for m in list(methods[seed % len(methods):]) + list(methods[:seed % len(methods)])]
    lock = threading.Lock()
    cores = sorted(os.sched_getaffinity(0))
    if jobs > len(cores):
        raise SystemExit(f"--jobs {jobs} needs {jobs} CPU cores; this process may use {len(cores)}")

    def worker(core: int | None) -> None:
        while True:
            with lock:
                if not queue:
                    return
                m, seed = queue.pop(0)
            r = _one(m, seed, cap, core)
            with lock:
                results[m].append(r)
                progress(f"  search: {m} seed {seed}: {'reached' if r['reached'] else 'censored'} "
                         f"in {r['seconds']:.0f} s, {r['trials']} trials, {r['epochs']} epochs")

    threads = [threading.Thread(target=worker, args=(cores[k] if jobs > 1 else None,)) for k in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return report(results, seeds, cap, jobs)


def _ratio_line(results: dict[str, list[dict]], a: str, b: str, goal: float | None = None) -> str:
    """Method a / method b over paired seeds: the median per-seed time ratio with its bootstrap CI, and epochs."""
    pairs = [_ratio(x, y) for x, y in zip(results[a], results[b])]
    time_ci = ratio_ci([r for r, _ in pairs])
    epochs_ci = ratio_ci([x["epochs"] / max(1, y["epochs"]) for x, y in zip(results[a], results[b])])
    per = ", ".join(f"{mark}{r:.2f}" for r, mark in pairs)
    return (f"- {'vs ' + b if a == 'dlbench' else a + ' / ' + b}: time ratio **{time_ci[0]:.2f}** [{time_ci[1]:.2f}, "
            f"{time_ci[2]:.2f}] (per seed {per}); epochs ratio {epochs_ci[0]:.2f} [{epochs_ci[1]:.2f}, "
            f"{epochs_ci[2]:.2f}]." + (f" Goal <= {goal}." if goal is not None else ""))


def report(results: dict[str, list[dict]], seeds: int, cap: float, jobs: int = 1) -> str:
    """The section of docs/benchmarks.md from each method's results (also `--report RAW`, from the raw lines)."""
    for m, rs in results.items():
        rs.sort(key=lambda r: r["seed"])
        # A run that did not reach the target counts at the cap, also one that spent its whole trial budget sooner.
        results[m] = [r if r["reached"] or r["seconds"] >= cap else {**r, "seconds": cap, "measured_seconds": r["seconds"]}
                      for r in rs]
    lines = [
        f"## Search efficiency: time and trials to reach val_accuracy >= {TARGET}",
        "",
        f"Shared {SEARCH_DATASET} MLP problem ({MAX_EPOCHS} epochs per trial), {seeds} seeds per method, each run in a "
        f"fresh process, methods interleaved (order rotated per seed), "
        + (f"{jobs} runs side by side, each pinned to its own CPU core, " if jobs > 1 else "one run at a time, ")
        + f"cap {cap:.0f} s per run (a censored run shows `>{cap:.0f}` and counts at the cap, as does a run that "
        f"spent its whole trial budget without reaching the target: dlbench's is {BUDGET} trials). Trials = "
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
        lines += [_ratio_line(results, "dlbench", m, goals.get(m, 1.0)) for m in results if m != "dlbench"]
    variants = [m for m in results if m.startswith("dlbench:")]
    if variants and "optuna-mlflow" in results:
        lines += ["", "Each dlbench variant / the hand-rolled script (optuna-mlflow), the same way:", ""]
        lines += [_ratio_line(results, m, "optuna-mlflow") for m in variants]
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
    p.add_argument("--jobs", type=int, default=1, help="runs side by side, each pinned to its own CPU core")
    p.add_argument("--report", metavar="RAW", help="only render the report from the raw JSON lines of a run "
                   "(its 'Raw results'), with that run's --seeds, --cap and --jobs")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--core", type=int, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        child(a.one, a.seed, a.cap, a.core)
    elif a.report:
        raw = [json.loads(line) for line in open(a.report) if line.startswith("{")]
        by_method: dict[str, list[dict]] = {}
        for r in raw:
            by_method.setdefault(r["method"], []).append(r)
        print(report(by_method, a.seeds, a.cap, a.jobs))
    else:
        print(run(a.seeds, a.cap, tuple(a.methods.split(",")), a.jobs,
                  progress=lambda line: print(line, file=sys.stderr, flush=True)))  # stdout: the report alone
