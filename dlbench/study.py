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
import time
import traceback
from pathlib import Path
from typing import Any

import filelock
import optuna
from optuna.trial import TrialState

from dlbench import data, models, pretrain, procs, spaces, spec, train
from dlbench.progress import Progress, quiet_libraries
from dlbench.spec import Arm, Experiment, SpecError
from dlbench import tracking as T

JOURNAL_FILE = "optuna-journal.log"
TRIAL_SEED_OFFSET = 1000  # trial n trains with seed 1000 + n; repeat s with seed s: repeats never reuse a tuning seed
DIVERGED = "diverged"

# User attributes on Optuna trials (mirrors of the MLflow tags).
A_RUN_ID = "mlflow_run_id"
A_REASON = "fail_reason"


class RunError(RuntimeError):
    """A failure at run time (exit status 1): the message says what happened and what to do."""


@dataclasses.dataclass(frozen=True)
class Settings:
    storage: str = "studies/"
    tracking_uri: str = T.DEFAULT_URI
    workers: int = 1
    progress: bool | None = None  # None: on when stderr is a terminal


# === Storage ===


def open_storage(url: str):
    """Optuna storage from a URL or a folder.

    A folder (the default `studies/`) holds one journal file. We use Optuna's JournalStorage with a file backend
    rather than RDB-on-SQLite: the journal is an append-only log guarded by a file lock, so several processes on
    one machine can share it safely, while SQLite under concurrent writers fails with "database is locked" (Optuna's
    docs advise against SQLite for parallel workers). Across machines, pass a PostgreSQL URL.
    """
    if "://" in url:
        # Workers started together on a new database would race to create Optuna's tables (PostgreSQL: duplicate
        # enum types); creating them under the claim lock serialises that.
        try:
            with claim_lock(url):
                return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except ModuleNotFoundError as e:  # the database driver SQLAlchemy needs for this URL
            extra = " (`pip install 'dlbench[postgres]'`, psycopg2-binary)" if "postgres" in url else ""
            raise SpecError("command line", "--storage", f"{url.split('://')[0]} storage needs the Python driver "
                            f"{e.name!r}, which is not installed: install it{extra}") from e
    path = Path(url)
    if path.suffix not in (".log", ".journal"):
        path.mkdir(parents=True, exist_ok=True)
        path = path / JOURNAL_FILE
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(path),
                                                         lock_obj=optuna.storages.journal.JournalFileOpenLock(str(path)))
    return optuna.storages.JournalStorage(backend)


def claim_lock(url: str):
    """The lock under which workers claim trials, seed repeats and arm runs, so the budget is never overshot and no
    seed or arm run is taken twice. A context manager, reentrant.

    With a PostgreSQL storage, a PostgreSQL advisory lock in that database (`AdvisoryLock`): every worker that
    shares the storage, on any machine, is excluded. With a journal folder (one machine), a file lock beside it.
    Other database URLs (MySQL, SQLite) get a file lock in $TMPDIR, which excludes the workers of this machine only.
    """
    if url.startswith(("postgresql://", "postgresql+", "postgres://")):
        return AdvisoryLock(url, "dlbench claim")
    if "://" in url:
        name = hashlib.sha256(url.encode()).hexdigest()[:16]
        return filelock.FileLock(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"dlbench-{name}.lock"))
    path = Path(url)
    folder = path if path.suffix not in (".log", ".journal") else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(str(folder / ".dlbench-claim.lock"))


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock (`pg_advisory_lock`) as a reentrant context manager.

    It is held on a connection of its own for as long as the outermost `with` lasts, and PostgreSQL releases it
    when that connection closes, so a worker that dies while holding it blocks nobody. Claims are short (a few
    queries), so one lock per database serves every experiment in it.
    """

    def __init__(self, url: str, name: str):
        self.url = url
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._engine = None
        self._conn = None
        self._depth = 0

    def __enter__(self) -> "AdvisoryLock":
        import sqlalchemy

        if self._depth == 0:
            if self._engine is None:
                self._engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
            self._conn = self._engine.connect()
            try:
                self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
            except BaseException:
                self._conn.close()
                self._conn = None
                raise
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        import sqlalchemy

        self._depth -= 1
        if self._depth == 0:
            conn, self._conn = self._conn, None
            try:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            finally:
                conn.close()


def study_name(exp: Experiment, arm: str) -> str:
    return f"{exp.name}/{arm}"


def _sampler_settings(exp: Experiment) -> dict[str, Any]:
    # TPE's random start-up trials are counted per Hyperband bracket (Optuna's TPE only learns from trials of the
    # current trial's bracket): 5 per bracket x 2 brackets (see _pruner) = 10 random trials before TPE learns,
    # where Optuna's defaults (10 x 4 brackets at min_resource=1) would spend 40. Measured: bench/CHANGES.md.
    return {"sampler": "TPESampler", "n_startup_trials": max(2, min(5, exp.budget.trials // 3)),
            "multivariate": True, "constant_liar": True}


def hyperband_min_resource(epochs: int) -> int:
    """The first rung: a ninth of the epochs, so Hyperband has 2 brackets (reduction factor 3) rather than 4."""
    return max(1, math.ceil(epochs / 9))


def _pruner(exp: Experiment):
    if exp.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=hyperband_min_resource(exp.budget.epochs),
                                              max_resource=exp.budget.epochs, reduction_factor=3)
    if exp.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, exp.budget.epochs // 4))
    return optuna.pruners.NopPruner()


def _seed(*parts: Any) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def open_study(exp: Experiment, arm: str, storage, worker: int = 0) -> optuna.Study:
    """Create or load the arm's study; refuse one that was made from a different version of the spec."""
    s = _sampler_settings(exp)
    sampler = optuna.samplers.TPESampler(seed=_seed(exp.name, arm, worker), n_startup_trials=s["n_startup_trials"],
                                         multivariate=s["multivariate"], constant_liar=s["constant_liar"])
    study = optuna.create_study(storage=storage, study_name=study_name(exp, arm), sampler=sampler,
                                pruner=_pruner(exp), direction=spaces.metric_direction(exp), load_if_exists=True)
    stored = study.user_attrs.get("spec_hash")
    if stored is None:
        for k, v in {"spec_hash": exp.spec_hash, "metric": exp.metric, "pruner": exp.pruner,
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
        self.storage = open_storage(settings.storage)
        self.lock = claim_lock(settings.storage)
        self.tracker = T.Tracker(settings.tracking_uri, exp.name)
        self.progress = progress or Progress(enabled=False)
        train.configure(threads=threads, deterministic=True)
        import keras

        self.tags = T.manifest(train.device(), deterministic=True, backend=keras.backend.backend())
        self.tags[T.TAG_SPEC_HASH] = exp.spec_hash
        self.data = data.load(exp.dataset.name, exp.dataset.options)
        self.studies = {a.name: open_study(exp, a.name, self.storage, worker) for a in exp.arms}

    # --- MLflow parents ---

    def arm_run(self, arm: str) -> str:
        """The arm's parent run, found by tags or created (under the claim lock, so only once)."""
        with self.lock:
            found = self.tracker.runs(role=T.ROLE_ARM, arm=arm, spec_hash=self.exp.spec_hash)
            if found:
                return found[0].info.run_id
            return self.tracker.create_run(arm, {**self.tags, T.TAG_ROLE: T.ROLE_ARM, T.TAG_ARM: arm,
                                                 T.TAG_STUDY: study_name(self.exp, arm)})

    # --- stale work left by dead workers ---

    def _fail_stale(self, arm: str, study: optuna.Study) -> None:
        """Mark trials held by dead workers FAIL and end their MLflow runs FAILED; a replacement trial then runs."""
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            a = t.user_attrs
            if "host" not in a and time.time() - t.datetime_start.timestamp() < 60:
                continue  # just asked for; its worker is writing its identity
            if procs.alive(a.get("host"), a.get("pid"), a.get("pid_start"), a.get("heartbeat")):
                continue
            reason = f"worker died: process {a.get('pid', '?')} on {a.get('host', '?')} stopped while running it"
            study._storage.set_trial_user_attr(t._trial_id, A_REASON, reason)
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            if a.get(A_RUN_ID):
                self.tracker.end_run(a[A_RUN_ID], T.STATE_FAIL, reason)
        # MLflow trial runs still RUNNING whose Optuna trial is finished (or whose worker died before linking them).
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        for run in self.tracker.runs(role=T.ROLE_TRIAL, arm=arm, status="RUNNING"):
            number = int(run.data.tags.get(T.TAG_TRIAL, -1))
            if states.get(number) != TrialState.RUNNING:
                self.tracker.end_run(run.info.run_id, T.STATE_FAIL, "worker died before finishing this run")

    # --- building and pretraining ---

    def _objective(self, params: spaces.Params) -> dict[str, Any]:
        entry = models.get(params.model_name)
        return {"task": entry.task, "loss": entry.loss(params.model)}

    def _builder(self, params: spaces.Params, seed: int, run_id: str):
        """What `train.fit` calls (after seeding) to get the model: built, then pretrained when its params ask.

        Pretraining losses go to the same MLflow run as `pretrain/layer_<i>/loss` (step = epoch), with
        `pretrain_seconds` and `pretrain_rows`; `train_seconds` stays the supervised training time alone.
        """

        epoch_logger = self.tracker.epoch_logger(run_id)

        def log(layer: int, epoch: int, logs: dict[str, float]) -> None:
            epoch_logger(epoch, {f"pretrain/layer_{layer}/{k}": v for k, v in logs.items()})

        def build():
            model = models.get(params.model_name).build(params.model, self.data)
            if pretrain.applies(params.model):
                done = pretrain.greedy_layerwise(model, params.model, pretrain.unlabeled_inputs(self.data),
                                                 params.train, seed=seed, hook=log)
                self.tracker.log_metrics(run_id, {"pretrain_seconds": done.seconds, "pretrain_rows": done.rows})
            return model

        return build

    # --- tuning ---

    def budget_used(self, study: optuna.Study) -> tuple[int, int]:
        """(trials that count toward the budget, trials that crashed).

        COMPLETE, PRUNED, diverged (a real outcome of the configuration) and live RUNNING trials count; trials
        that failed for other reasons (killed worker, crash) do not, and are replaced.
        """
        used = crashed = 0
        for t in study.get_trials(deepcopy=False):
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
                used += 1
            elif t.state == TrialState.FAIL:
                if str(t.user_attrs.get(A_REASON, "")).startswith(DIVERGED):
                    used += 1
                else:
                    crashed += 1
        return used, crashed

    def _claim_trial(self, arm: str, study: optuna.Study):
        with self.lock:
            self._fail_stale(arm, study)
            used, crashed = self.budget_used(study)
            if used >= self.exp.budget.trials:
                return None
            if crashed >= max(3, self.exp.budget.trials):
                raise RunError(f"arm {arm!r}: {crashed} trials crashed (not diverged); see their "
                               f"`{T.TAG_REASON}` tag in MLflow. Fix the cause and run again: finished trials are kept.")
            trial = study.ask()
            for k, v in procs.identity().items():
                trial.set_user_attr(k, v)
            return trial

    def tune(self, arm: Arm) -> None:
        study = self.studies[arm.name]
        parent = self.arm_run(arm.name)
        used, _ = self.budget_used(study)
        self.progress.start(arm.name, "trials", self.exp.budget.trials, min(used, self.exp.budget.trials),
                            self.exp.budget.epochs)
        self.progress.best = _best_value(study)
        while (trial := self._claim_trial(arm.name, study)) is not None:
            self._run_trial(arm, study, trial, parent)
            self.progress.done(_best_value(study))
        self.progress.close()

    def _run_trial(self, arm: Arm, study: optuna.Study, trial: optuna.Trial, parent: str) -> None:
        exp = self.exp
        seed = TRIAL_SEED_OFFSET + trial.number
        run_id = None
        try:
            params = spaces.sample(trial, exp, arm)
            tags = {**self.tags, T.TAG_ROLE: T.ROLE_TRIAL, T.TAG_ARM: arm.name, T.TAG_TRIAL: trial.number,
                    T.TAG_STUDY: study.study_name, T.TAG_STATE: T.STATE_RUNNING}
            run_id = self.tracker.create_run(f"{arm.name}/trial-{trial.number}", tags, parent,
                                             {**params.values, "model": params.model_name, "seed": seed,
                                              "epochs": exp.budget.epochs})
            trial.set_user_attr(A_RUN_ID, run_id)

            def report(epoch: int, logs: dict[str, float]) -> None:
                self.progress.epoch(f"trial {trial.number}", epoch, logs, exp.metric)
                value = logs.get(exp.metric, math.nan)
                if not math.isfinite(value):
                    return
                trial.set_user_attr("heartbeat", f"{time.time():.0f}")
                trial.report(value, step=epoch + 1)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")

            result = train.fit(self._builder(params, seed, run_id), self.data, params.train,
                               epochs=exp.budget.epochs, seed=seed, monitor=exp.metric,
                               hooks=[self.tracker.epoch_logger(run_id), report], **self._objective(params))
            # The MLflow run ends before the Optuna trial: another worker's `_fail_stale` fails MLflow runs still
            # RUNNING whose trial is finished, so the other order races with it (a finished trial, a FAILED run).
            self.tracker.log_metrics(run_id, result.metrics(exp.metric))
            self.tracker.end_run(run_id, T.STATE_COMPLETE)
            study.tell(trial, result.best_value)
        except optuna.TrialPruned as e:
            self.tracker.set_tags(run_id, {"dlbench.pruned_at": str(e)})
            self.tracker.end_run(run_id, T.STATE_PRUNED)
            study.tell(trial, state=TrialState.PRUNED)
        except train.Diverged as e:
            self._fail(study, trial, run_id, f"{DIVERGED}: non-finite loss at epoch {e.epoch + 1}")
        except KeyboardInterrupt:
            self._fail(study, trial, run_id, "interrupted by the user")
            raise
        except Exception as e:  # noqa: BLE001 - a crashed trial is recorded and the study goes on
            self._fail(study, trial, run_id, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")
            self.progress.note(f"{arm.name}: trial {trial.number} failed: {type(e).__name__}: {e}")

    def _fail(self, study, trial, run_id: str | None, reason: str) -> None:
        trial.set_user_attr(A_REASON, reason[:2000])
        if run_id:  # the run first, as in `_run_trial`
            self.tracker.end_run(run_id, T.STATE_FAIL, reason)
        study.tell(trial, state=TrialState.FAIL)

    # --- seed repeats ---

    def _wait_for_tuning(self, arm: str, study: optuna.Study) -> None:
        while True:
            with self.lock:
                self._fail_stale(arm, study)
            if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                return
            time.sleep(1.0)

    def best_params(self, arm: Arm) -> spaces.Params | None:
        study = self.studies[arm.name]
        try:
            best = study.best_trial
        except ValueError:
            return None
        return spaces.resolve(self.exp, arm, best.params)

    def _claim_seed(self, arm: str, config: str, parent: str, params: spaces.Params):
        with self.lock:
            runs = self.tracker.runs(role=T.ROLE_REPEAT, arm=arm, config_hash=config)
            taken, crashed = set(), 0
            for r in runs:
                seed = int(r.data.tags[T.TAG_SEED])
                t = r.data.tags
                if r.info.status == "RUNNING":
                    if procs.alive(t.get(T.TAG_HOST), t.get(T.TAG_PID), t.get(T.TAG_PID_START), t.get("dlbench.heartbeat")):
                        taken.add(seed)
                    else:
                        self.tracker.end_run(r.info.run_id, T.STATE_FAIL, "worker died while running this repeat")
                elif r.info.status == "FINISHED" or t.get(T.TAG_REASON, "").startswith(DIVERGED):
                    taken.add(seed)
                else:
                    crashed += 1
            todo = [s for s in range(self.exp.seeds) if s not in taken]
            if not todo:
                return None
            if crashed >= max(3, self.exp.seeds):
                raise RunError(f"arm {arm!r}: {crashed} seed repeats crashed; see their `{T.TAG_REASON}` tag in MLflow")
            seed = todo[0]
            ident = procs.identity()
            tags = {**self.tags, T.TAG_ROLE: T.ROLE_REPEAT, T.TAG_ARM: arm, T.TAG_SEED: seed, T.TAG_CONFIG: config,
                    T.TAG_STATE: T.STATE_RUNNING, T.TAG_PID: ident["pid"], T.TAG_PID_START: ident["pid_start"],
                    "dlbench.heartbeat": ident["heartbeat"]}
            run_id = self.tracker.create_run(f"{arm}/seed-{seed}", tags, parent,
                                             {**params.values, "model": params.model_name, "seed": seed,
                                              "epochs": self.exp.budget.epochs})
            return seed, run_id

    def repeat(self, arm: Arm) -> None:
        study = self.studies[arm.name]
        self._wait_for_tuning(arm.name, study)
        params = self.best_params(arm)
        if params is None:
            self.progress.note(f"{arm.name}: no trial completed, so there is no configuration to repeat")
            return
        config = config_hash(params.values)
        parent = self.arm_run(arm.name)
        self.tracker.set_tags(parent, {T.TAG_CONFIG: config})
        done = len([r for r in self.tracker.runs(role=T.ROLE_REPEAT, arm=arm.name, config_hash=config)
                    if r.info.status == "FINISHED"])
        self.progress.start(arm.name, "seeds", self.exp.seeds, min(done, self.exp.seeds), self.exp.budget.epochs)
        while (claim := self._claim_seed(arm.name, config, parent, params)) is not None:
            seed, run_id = claim
            hook = lambda epoch, logs, s=seed: self.progress.epoch(f"seed {s}", epoch, logs, self.exp.metric)  # noqa: E731
            try:
                result = train.fit(self._builder(params, seed, run_id), self.data, params.train,
                                   epochs=self.exp.budget.epochs, seed=seed, monitor=self.exp.metric,
                                   hooks=[self.tracker.epoch_logger(run_id), hook], evaluate_test=True,
                                   **self._objective(params))
                self.tracker.log_metrics(run_id, result.metrics(self.exp.metric))
                self.tracker.end_run(run_id, T.STATE_COMPLETE)
            except train.Diverged as e:
                self.tracker.end_run(run_id, T.STATE_FAIL, f"{DIVERGED}: non-finite loss at epoch {e.epoch + 1}")
            except KeyboardInterrupt:
                self.tracker.end_run(run_id, T.STATE_FAIL, "interrupted by the user")
                raise
            except Exception as e:  # noqa: BLE001
                self.tracker.end_run(run_id, T.STATE_FAIL, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")
                self.progress.note(f"{arm.name}: seed {seed} failed: {type(e).__name__}: {e}")
            self.progress.done(None)
        self.progress.close()
        best = _best_value(study)
        if best is not None:
            self.tracker.log_metrics(parent, {f"best_trial_{self.exp.metric}": best})
        self.tracker.end_run(parent, T.STATE_COMPLETE)

    def work(self) -> None:
        """Tune every arm, then repeat every arm's best configuration (other workers may share the work)."""
        for arm in self.exp.arms:
            self.tune(arm)
        for arm in self.exp.arms:
            self.repeat(arm)


def config_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _best_value(study: optuna.Study) -> float | None:
    try:
        return study.best_value
    except ValueError:
        return None


# === Entry point ===


def _worker_main(exp: Experiment, settings: Settings, worker: int, threads: int) -> None:
    quiet_libraries()
    Worker(exp, settings, worker=worker, threads=threads).work()


def run(exp: Experiment, settings: Settings) -> None:
    """Tune every arm and repeat the best configurations (`compare.report` then reads the results).

    With `settings.workers > 1`, that many processes share the work (each with its share of CPU threads); this
    process then only shows progress. Re-running resumes where the storage left off.
    """
    quiet_libraries()
    progress = Progress(settings.progress)
    # Create the stores and studies once, before workers race to do it, and keep the spec beside its results.
    storage = open_storage(settings.storage)
    for arm in exp.arms:
        open_study(exp, arm.name, storage)
    T.Tracker(settings.tracking_uri, exp.name).store_spec(spec.to_raw(exp))
    if settings.workers <= 1:
        Worker(exp, settings, progress=progress).work()
        return

    ctx = multiprocessing.get_context("spawn")
    threads = train.threads_per_worker(settings.workers)
    procs_ = [ctx.Process(target=_worker_main, args=(exp, settings, i, threads), name=f"dlbench-worker-{i}")
              for i in range(settings.workers)]
    for p in procs_:
        p.start()
    progress.note(f"{settings.workers} workers started ({threads} CPU threads each)")
    try:
        _watch(exp, storage, procs_, progress)
    except KeyboardInterrupt:
        for p in procs_:
            p.join(timeout=30)
        raise
    failed = [p for p in procs_ if p.exitcode != 0]
    if failed:
        raise RunError(f"{len(failed)} of {len(procs_)} workers failed (exit codes "
                       f"{', '.join(str(p.exitcode) for p in failed)}); run the same command again to resume")


def _watch(exp: Experiment, storage, workers: list, progress: Progress) -> None:
    """Show the shared progress of all workers until they end."""
    total = len(exp.arms) * exp.budget.trials
    progress.start("all arms", "trials", total, 0, exp.budget.epochs)
    seen = 0
    while any(p.is_alive() for p in workers):
        time.sleep(1.0)
        done = 0
        for arm in exp.arms:
            s = optuna.load_study(study_name=study_name(exp, arm.name), storage=storage)
            done += len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)))
        for _ in range(max(0, min(done, total) - seen)):
            progress.done(None)
        seen = max(seen, min(done, total))
    for p in workers:
        p.join()
    progress.close()
