"""Studies: one Optuna study per arm, tuned under an equal budget, then the best configuration repeated over seeds.

The only module that knows every other one. A run can be interrupted and resumed at any point, and several
workers (processes on this machine, or on others sharing a PostgreSQL storage) can work on the same studies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import sys
import time
import traceback
from typing import Any

import optuna
from optuna.trial import TrialState

from dlbench import (checkpoints, claims, data, gpus, leases, lifecycle, plugins, quantize, runtime, search, spaces, spec,
                     storage, transfer)
from dlbench import tracking as T
from dlbench.claims import A_RUN_ID, A_TAKEOVERS, RunError
from dlbench.progress import Progress, quiet_libraries
from dlbench.spec import Arm, Experiment, SpecError
from dlbench.units import Trainer, Unit

__all__ = ["RunError", "Settings", "Worker", "best_trial", "open_study", "run"]

TRIAL_SEED_OFFSET = 1000  # trial n trains with seed 1000 + n; repeat s with seed s: repeats never reuse a tuning seed


@dataclasses.dataclass(frozen=True)
class Settings:
    storage: str = "studies/"
    tracking_uri: str = T.DEFAULT_URI
    workers: int = 1
    progress: bool | None = None  # None: on when stderr is a terminal
    gpus: tuple[str, ...] = ()  # GPU indices to place workers on (--gpus); () = no placement
    workers_per_gpu: int = 1
    checkpoints: str | None = None  # folder; None: checkpoints.default_root(storage)


def open_study(exp: Experiment, arm: str, storage, worker: int = 0) -> optuna.Study:
    """Create or load the arm's study; refuse one that was made from a different version of the spec."""
    s = search.sampler_settings(exp)
    sampler = search.sampler(exp, search.seed(exp.name, arm, worker), exp.arm(arm), spaces.int_params(exp, exp.arm(arm)))
    study = optuna.create_study(storage=storage, study_name=exp.study_name(arm), sampler=sampler,
                                pruner=search.pruner(exp), directions=spaces.directions(exp), load_if_exists=True)
    stored = study.user_attrs.get("spec_hash")
    if stored is None:
        for k, v in {"spec_hash": exp.spec_hash, "metric": exp.metric, "metrics": list(exp.objectives),
                     "pruner": exp.pruner,
                     "epochs": exp.budget.epochs, "optuna": optuna.__version__, **s}.items():
            study.set_user_attr(k, v)
    elif stored != exp.spec_hash:
        raise SpecError(exp.path, "name", f"the storage already holds study {study.study_name!r} from a different "
                        f"version of this experiment (spec hash {stored}, this file {exp.spec_hash}: dataset, model, "
                        "metric, epochs or parameters changed). Give the experiment a new `name`, pass another "
                        "--storage and --tracking-uri, or delete the old studies first.")
    return study


# === One worker's view of a run ===


class Worker:
    """Everything one process needs to tune and repeat the arms of one experiment."""

    def __init__(self, exp: Experiment, settings: Settings, worker: int = 0, threads: int | None = None,
                 progress: Progress | None = None):
        self.exp = exp
        self.settings = settings
        self.worker = worker
        self.storage = storage.open_storage(settings.storage)
        self.lock = storage.claim_lock(settings.storage)
        self.tracker = T.Tracker(settings.tracking_uri, exp.name)
        self.claims = claims.Claims(exp, self.lock, self.tracker)
        self.progress = progress or Progress(enabled=False)
        runtime.configure(threads=threads)
        import keras

        self.tags = T.manifest(runtime.device(), backend=keras.backend.backend())
        self.tags[T.TAG_SPEC_HASH] = exp.spec_hash
        if settings.gpus:
            self.tags[T.TAG_CUDA_VISIBLE] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        root = settings.checkpoints or checkpoints.default_root(settings.storage)
        info = data.load(exp.dataset.name, exp.dataset.options)
        self.trainer = Trainer(exp, info, self.tracker, checkpoints.Store(root, exp.name, exp.spec_hash))
        self.dataset = T.dataset_input(exp.dataset.name, exp.dataset.options, info)
        self.studies = {a.name: open_study(exp, a.name, self.storage, worker) for a in exp.arms}

    def arm_run(self, arm: str) -> str:
        """The arm's parent run, found by tags or created (under the claim lock, so only once)."""
        with self.lock:
            found = self.tracker.runs(role=T.ROLE_ARM, arm=arm, spec_hash=self.exp.spec_hash)
            if found:
                return found[0].info.run_id
            return self.tracker.create_run(arm, {**self.tags, T.TAG_ROLE: T.ROLE_ARM, T.TAG_ARM: arm,
                                                 T.TAG_STUDY: self.exp.study_name(arm)})

    def _run(self, name: str, role_tags: dict, parent: str, params: spaces.Params, seed: int) -> str:
        tags = {**self.tags, **role_tags, T.TAG_STATE: T.STATE_RUNNING}
        return self.tracker.create_run(name, tags, parent, {**params.values, "model": params.model_name,
                                                            "seed": seed, "epochs": self.exp.budget.epochs},
                                       dataset=self.dataset)

    def _restarted(self, old: str, new: str, note: str) -> str:
        self.tracker.end_run(old, T.STATE_FAIL, f"worker died; {note}; the unit restarted in run {new}")
        return new

    def _note_crash(self, what: str):
        return lambda ending: self.progress.note(f"{what} {ending.headline}")

    # --- tuning ---

    def tune(self, arm: Arm) -> None:
        study = self.studies[arm.name]
        parent = self.arm_run(arm.name)
        used, _ = self.claims.budget_used(study)
        self.progress.start(arm.name, "trials", self.exp.budget.trials, min(used, self.exp.budget.trials),
                            self.exp.budget.epochs)
        self.progress.best = _best_value(study)
        while (trial := self.claims.trial(arm.name, study)) is not None:
            self._run_trial(arm, study, trial, parent)
            self.progress.done(_best_value(study))
        self.progress.close()

    def _trial_run(self, arm: Arm, study: optuna.Study, trial: optuna.Trial, parent: str, params, seed: int) -> str:
        """A new MLflow run for the trial, linked to it as a user attribute."""
        run_id = self._run(f"{arm.name}/trial-{trial.number}", {T.TAG_ROLE: T.ROLE_TRIAL, T.TAG_ARM: arm.name,
                           T.TAG_TRIAL: trial.number, T.TAG_STUDY: study.study_name}, parent, params, seed)
        trial.set_user_attr(A_RUN_ID, run_id)
        return run_id

    def _run_trial(self, arm: Arm, study: optuna.Study, trial: optuna.Trial, parent: str) -> None:
        exp, seed = self.exp, TRIAL_SEED_OFFSET + trial.number
        with leases.Heartbeat(claims.trial_lease(trial), claims.trial_holder(trial)) as lease, \
                lifecycle.recorded(self.tracker, None, study, trial, lease=lease,
                                   on_crash=self._note_crash(f"{arm.name}: trial {trial.number}")) as unit:
            params = spaces.sample(trial, exp, arm)  # a taken-over trial gets its stored values back
            old = trial.user_attrs.get(A_RUN_ID)
            unit.run_id = old or self._trial_run(arm, study, trial, parent, params, seed)
            fresh = lambda note: self._restarted(old, self._trial_run(arm, study, trial, parent, params, seed), note)  # noqa: E731
            unit.run_id, state = self.trainer.start(Unit(unit.run_id, A_TAKEOVERS in trial.user_attrs, fresh))

            def report(epoch: int, logs: dict[str, float]) -> None:
                self.progress.epoch(f"trial {trial.number}", epoch, logs, exp.metric)
                value = logs.get(exp.metric, math.nan)
                if not math.isfinite(value) or exp.multi_objective:  # Optuna prunes single objectives only
                    return
                trial.report(value, step=epoch + 1)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")

            result = self.trainer.fit(unit.run_id, state, params, seed, hooks=[report], lease=lease)
            unit.metrics = result.metrics(exp.metric)
            values = [result.objective(m, exp.metric) for m in exp.objectives]
            unit.value = values if exp.multi_objective else values[0]

    # --- seed repeats ---

    def _wait_for_tuning(self, arm: Arm, study: optuna.Study, parent: str) -> None:
        """Until no trial of the arm runs; trials whose workers die meanwhile are taken over and finished here."""
        while True:
            trial = self.claims.trial(arm.name, study)
            if trial is not None:
                self._run_trial(arm, study, trial, parent)
                continue
            if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                return
            time.sleep(1.0)

    def best_params(self, arm: Arm) -> spaces.Params | None:
        """The configuration the arm repeats: its best trial, by `metric` in a multi-objective search."""
        best = best_trial(self.studies[arm.name])
        return None if best is None else spaces.resolve(self.exp, arm, best.params)

    def repeat(self, arm: Arm) -> None:
        study = self.studies[arm.name]
        parent = self.arm_run(arm.name)
        self._wait_for_tuning(arm, study, parent)
        params = self.best_params(arm)
        if params is None:
            self.progress.note(f"{arm.name}: no trial completed, so there is no configuration to repeat")
            return
        config = config_hash(params.values)
        self.tracker.set_tags(parent, {T.TAG_CONFIG: config})
        done = len([r for r in self.tracker.runs(role=T.ROLE_REPEAT, arm=arm.name, config_hash=config)
                    if r.info.status == "FINISHED"])
        self.progress.start(arm.name, "seeds", self.exp.seeds, min(done, self.exp.seeds), self.exp.budget.epochs)

        def new_run(seed: int) -> str:
            return self._run(f"{arm.name}/seed-{seed}", {T.TAG_ROLE: T.ROLE_REPEAT, T.TAG_ARM: arm.name,
                             T.TAG_SEED: seed, T.TAG_CONFIG: config, **claims.holder_tags(leases.me().fields())},
                             parent, params, seed)

        while (claim := self.claims.seed(arm.name, config, new_run)) is not None or self._others_repeat(arm, config):
            if claim is None:  # an arm that others initialise from: wait until every repeat of it has finished
                time.sleep(1.0)
                continue
            seed, run_id, taken_over = claim
            fresh = lambda note, s=seed, old=run_id: self._restarted(old, new_run(s), note)  # noqa: E731
            self._run_repeat(arm, seed, Unit(run_id, taken_over, fresh), params)
            self.progress.done(None)
        self.progress.close()
        best = _best_value(study)
        if best is not None:
            self.tracker.log_metrics(parent, {f"best_trial_{self.exp.metric}": best})
        self.tracker.end_run(parent, T.STATE_COMPLETE)

    def _run_repeat(self, arm: Arm, seed: int, claimed: Unit, params: spaces.Params) -> None:
        run_id, state = self.trainer.start(claimed)
        hook = lambda epoch, logs: self.progress.epoch(f"seed {seed}", epoch, logs, self.exp.metric)  # noqa: E731
        with leases.Heartbeat(claims.repeat_lease(self.tracker, run_id),
                              claims.repeat_holder(self.tracker, run_id)) as lease, \
                lifecycle.recorded(self.tracker, run_id, lease=lease,
                                   on_crash=self._note_crash(f"{arm.name}: seed {seed}")) as unit:
            result = self.trainer.fit(run_id, state, params, seed, hooks=[hook], test=True, lease=lease)
            self.trainer.log_pictures(run_id, result.model, params)
            if self.exp.save_models == "repeats" or transfer.is_source(self.exp, arm.name):
                self.trainer.save_model(run_id, result.model)
            unit.metrics = result.metrics(self.exp.metric)
            if "quantize" in params.values:  # the spec asks: float and quantized model's size, latency, accuracy
                quantized, route = quantize.measure(result.model, self.trainer.data, params.train.quantize,
                                                    params.train.quantize_granularity, seed)
                unit.metrics.update(quantized)
                self.tracker.set_tags(run_id, {T.TAG_QUANTIZE_PATH: route})

    def _others_repeat(self, arm: Arm, config: str) -> bool:
        return transfer.is_source(self.exp, arm.name) and bool(self.tracker.runs(
            role=T.ROLE_REPEAT, arm=arm.name, status="RUNNING", config_hash=config))

    def work(self) -> None:
        """Tune every arm, then repeat every arm's best configuration (other workers may share the work); an arm
        that initialises from another (`init_from`) comes after that arm's repeats (transfer.stages)."""
        for stage in transfer.stages(self.exp):
            for arm in stage:
                try:
                    self.trainer.transfer.ready(arm)
                except transfer.SourceMissing as e:
                    raise RunError(str(e)) from None
                self.tune(arm)
            for arm in stage:
                self.repeat(arm)


def config_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The trial whose configuration the arm repeats, by the rule the comparison reports (search.best_trial)."""
    return search.best_trial(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), study.directions)


def _best_value(study: optuna.Study) -> float | None:
    best = best_trial(study)
    return None if best is None else best.values[0]


# === Entry point ===


def wants_determinism(exp: Experiment) -> bool:
    """Whether any arm may train with op determinism on (the default), which JAX must know before it starts."""
    return any(exp.params_for(arm).get("deterministic", True) is not False for arm in exp.arms)


def _worker_main(exp: Experiment, settings: Settings, worker: int, threads: int, plugin_state=None) -> None:
    quiet_libraries()
    runtime.prepare_environment(wants_determinism(exp))
    plugins.restore(plugin_state)  # the parent's plugins: a spawned worker starts with the built-ins only
    try:
        Worker(exp, settings, worker=worker, threads=threads).work()
    except Exception as e:  # noqa: BLE001 - its traceback, with credentials in URLs masked; the parent reports it
        sys.stderr.write(storage.redact("".join(traceback.format_exception(e))))
        sys.exit(1)


def run(exp: Experiment, settings: Settings) -> None:
    """Tune every arm and repeat the best configurations (`reporting.report` then reads the results).

    With `settings.workers > 1` or GPUs to place workers on, that many processes share the work (each with its
    share of CPU threads, and its own GPU); this process then only shows progress. Re-running resumes where the
    storage left off: finished units are kept, and units whose workers died are taken over from their checkpoints.
    """
    quiet_libraries()
    runtime.prepare_environment(wants_determinism(exp))
    progress = Progress(settings.progress)
    transfer.check(exp, data.load(exp.dataset.name, exp.dataset.options),  # sources in the store, before training
                   lambda arm: spaces.resolve(exp, arm, spaces.first_values(exp, arm)), settings.tracking_uri)
    # Create the stores and studies once, before workers race to do it, and keep the spec beside its results.
    opened = storage.open_storage(settings.storage)
    for arm in exp.arms:
        open_study(exp, arm.name, opened)
    T.Tracker(settings.tracking_uri, exp.name).store_spec(spec.to_raw(exp))
    if settings.workers <= 1 and not settings.gpus:
        Worker(exp, settings, progress=progress).work()
        return

    environments = (gpus.worker_environments(list(settings.gpus), settings.workers_per_gpu) if settings.gpus
                    else [None] * settings.workers)
    ctx = multiprocessing.get_context("spawn")
    threads = runtime.threads_per_worker(len(environments))
    procs_ = []
    plugin_state = plugins.snapshot()
    for i, env in enumerate(environments):
        p = ctx.Process(target=_worker_main, args=(exp, settings, i, threads, plugin_state),
                        name=f"dlbench-worker-{i}")
        with gpus.environment(env):  # a spawned worker starts with this environment, before any framework import
            p.start()
        procs_.append(p)
    where = f" on GPUs {','.join(settings.gpus)} ({settings.workers_per_gpu} per GPU)" if settings.gpus else ""
    progress.note(f"{len(procs_)} workers started{where} ({threads} CPU threads each)")
    try:
        _watch(exp, opened, procs_, progress)
    except KeyboardInterrupt:
        for p in procs_:
            p.join(timeout=30)
        raise
    failed = [p for p in procs_ if p.exitcode != 0]
    if failed:
        raise RunError(f"{len(failed)} of {len(procs_)} workers failed (exit codes "
                       f"{', '.join(str(p.exitcode) for p in failed)}); run the same command again to resume")


def _watch(exp: Experiment, opened, workers: list, progress: Progress) -> None:
    """Show the shared progress of all workers until they end."""
    total = len(exp.arms) * exp.budget.trials
    progress.start("all arms", "trials", total, 0, exp.budget.epochs)
    seen = 0
    while any(p.is_alive() for p in workers):
        time.sleep(1.0)
        done = 0
        for arm in exp.arms:
            s = optuna.load_study(study_name=exp.study_name(arm.name), storage=opened)
            done += len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)))
        for _ in range(max(0, min(done, total) - seen)):
            progress.done(None)
        seen = max(seen, min(done, total))
    for p in workers:
        p.join()
    progress.close()
