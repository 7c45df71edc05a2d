"""MLflow tracking: the store, run naming and tags, per-epoch logging, and read helpers. The only mlflow importer."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import dlbench

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
# Buffered epoch metrics are written at least this often (a killed worker loses at most this much of its curve;
# its run is marked FAILED anyway).
EPOCH_FLUSH_SECONDS = 10.0
# Seconds between samples of CPU, memory and GPU use (MLflow system metrics) on trial and repeat runs.
SYSTEM_METRICS_SECONDS = 5.0

# === Tag keys and values (never spelled anywhere else) ===
TAG_ROLE = "dlbench.role"
TAG_ARM = "dlbench.arm"
TAG_SPEC_HASH = "dlbench.spec_hash"
TAG_VERSION = "dlbench.version"
TAG_STATE = "dlbench.state"
TAG_REASON = "dlbench.fail_reason"
TAG_TRIAL = "dlbench.trial_number"
TAG_STUDY = "dlbench.study"
TAG_SEED = "dlbench.seed"
TAG_CONFIG = "dlbench.config_hash"
TAG_HOST = "dlbench.host"
TAG_PID = "dlbench.pid"
TAG_PID_START = "dlbench.pid_start"
TAG_SPEC = "dlbench.spec"
TAG_HEARTBEAT = "dlbench.heartbeat"
TAG_RESUMED_FROM = "dlbench.resumed_from_epoch"  # the last finished epoch a resumed run continued after
TAG_TAKEOVERS = "dlbench.takeovers"  # how often the unit's worker died and another took it over
TAG_CHECKPOINT_NOTE = "dlbench.checkpoint_note"  # why a checkpoint could not be used
TAG_PRUNED_AT = "dlbench.pruned_at"
TAG_MODEL_NOTE = "dlbench.model_note"  # why a repeat's model was not saved
TAG_DEVICE = "dlbench.device"
TAG_CUDA_VISIBLE = "dlbench.cuda_visible_devices"  # the GPUs this worker was given (--gpus)
TAG_DETERMINISM = "dlbench.determinism"
TAG_PRECISION = "dlbench.precision"
TAG_JIT = "dlbench.jit_compile"
TAG_QUANTIZE_PATH = "dlbench.quantize_path"  # keras or tflite: which tool quantized and timed a repeat's model
TAG_INIT_SOURCE_RUN = "dlbench.init_source_run"  # the repeat run whose weights initialised this one (init_from)
TAG_INIT_SOURCE = "dlbench.init_source"  # the same as "<experiment>/<arm>/seed-<s>"
TAG_VERDICT = "dlbench.verdict"  # f"{TAG_VERDICT}.{arm}" on the comparison run
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"

ROLE_ARM = "arm"
ROLE_TRIAL = "trial"
ROLE_REPEAT = "repeat"
ROLE_COMPARISON = "comparison"

STATE_RUNNING = "RUNNING"
STATE_COMPLETE = "COMPLETE"
STATE_PRUNED = "PRUNED"
STATE_FAIL = "FAIL"
STATE_INTERRUPTED = "INTERRUPTED"  # stopped with Ctrl-C; the next run resumes it

_MLFLOW_STATUS = {STATE_COMPLETE: "FINISHED", STATE_PRUNED: "FINISHED", STATE_FAIL: "FAILED"}


def default_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def artifact_root(uri: str) -> str | None:
    """Artifacts of a local SQLite store go in `artifacts/` beside the database file."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent.resolve() / "artifacts").as_uri()
    return None


def _new_sqlite_store(db: Path) -> None:
    """Create a missing SQLite store as a copy of an empty, fully migrated one, made once per MLflow version.

    MLflow builds a new store by running every schema migration it has, about 4 s: a third of the time from
    `dlbench run` to the first epoch (bench/startup.py). The copy takes milliseconds. The template is made by
    MLflow itself, in the user's cache folder; it holds only the schema and MLflow's empty Default experiment.
    """
    import filelock
    import mlflow

    if db.exists():
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(db.with_name(f".{db.name}.lock"))):  # workers starting together create it once
        if db.exists():
            return
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlbench"
        template = cache / f"mlflow-{mlflow.__version__}-empty.db"
        try:
            if not template.exists():
                cache.mkdir(parents=True, exist_ok=True)
                scratch = cache / f".{template.name}.{os.getpid()}"
                scratch.unlink(missing_ok=True)
                MlflowClient(tracking_uri=f"sqlite:///{scratch}").search_experiments(max_results=1)
                os.replace(scratch, template)
            scratch = db.with_name(f".{db.name}.{os.getpid()}.new")
            shutil.copyfile(template, scratch)
            root = artifact_root(f"sqlite:///{db}")
            with contextlib.closing(sqlite3.connect(scratch)) as con, con:  # MLflow's Default experiment: our folder
                con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (f"{root}/0",))
            try:
                os.link(scratch, db)  # atomic: a reader never sees a half-made store
            except FileExistsError:
                pass
            finally:
                scratch.unlink(missing_ok=True)
        except (OSError, sqlite3.Error):  # an unwritable cache or no hard links: MLflow migrates it, once, here
            MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments(max_results=1)


def ui_command(uri: str) -> str:
    if uri == DEFAULT_URI:
        return "dlbench ui    (then open http://127.0.0.1:5000)"
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"dlbench ui --tracking-uri {uri}    (then open http://127.0.0.1:5000)"


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence one library logger's INFO lines ("Started monitoring system metrics.") for a moment."""
    import logging

    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


# === Reproducibility manifest ===


def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


@functools.lru_cache(maxsize=1)
def _git() -> tuple[str, str]:
    root = Path(dlbench.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown", "unknown"
    return commit or "unknown", ("true" if dirty else "false") if commit else "unknown"


def manifest(device: str, backend: str) -> dict[str, str]:
    """Tags every run carries so a result can be traced to code, packages and hardware.

    What a run's training had in force (determinism, precision, XLA) is tagged per run, from `train.fit`.
    """
    commit, dirty = _git()
    return {
        "mlflow.source.git.commit": commit,
        "dlbench.git_dirty": dirty,
        TAG_VERSION: dlbench.__version__,
        "dlbench.python": platform.python_version(),
        "dlbench.tensorflow": _version("tensorflow") if _version("tensorflow") != "absent" else _version("tensorflow-cpu"),
        "dlbench.keras": _version("keras"),
        "dlbench.optuna": _version("optuna"),
        "dlbench.mlflow": _version("mlflow") if _version("mlflow") != "absent" else _version("mlflow-skinny"),
        "dlbench.keras_backend": backend,
        TAG_DEVICE: device,
        TAG_HOST: socket.gethostname(),
        "dlbench.platform": f"{platform.system()} {platform.machine()}",
    }


# === The store ===


def dataset_input(name: str, options: Mapping[str, Any], info: Any) -> dict:
    """What a run logs as its MLflow dataset input (`Tracker.log_dataset`): the dataset's name, a digest of its
    options and split sizes, the options (source), and the split sizes, input shape, classes and task (profile)."""
    sizes = {"train": len(info.train), "val": len(info.val), "test": len(info.test),
             "unlabeled": len(info.unlabeled) if info.unlabeled is not None else 0}
    source = {"dataset": name, **dict(sorted(options.items()))}
    profile = {**sizes, "input_shape": list(info.input_shape), "classes": info.num_classes, "task": info.task}
    digest = hashlib.sha256(json.dumps([source, profile], sort_keys=True).encode()).hexdigest()[:8]
    return {"name": name, "digest": digest, "source": source, "profile": profile}


class Tracker:
    """One MLflow experiment in one tracking store."""

    def __init__(self, uri: str, experiment: str):
        self.uri = uri
        if uri.startswith("sqlite:///"):
            Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            _new_sqlite_store(Path(uri[len("sqlite:///"):]))
        self.client = MlflowClient(tracking_uri=uri)
        self._pending: dict[str, list[Metric]] = {}  # run id -> epoch metrics not yet written
        self.experiment_name = experiment
        self.experiment_id = self._ensure_experiment(experiment)

    def _ensure_experiment(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        root = artifact_root(self.uri)
        try:
            # The kind tag makes MLflow 3's UI open the experiment on its runs table, not the GenAI overview.
            return self.client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None,
                                                 tags={"mlflow.experimentKind": "custom_model_development"})
        except MlflowException:  # created meanwhile by another worker
            return self.client.get_experiment_by_name(name).experiment_id

    # --- writing ---

    def store_spec(self, raw: Mapping[str, Any]) -> None:
        """Keep the spec as it ran on the MLflow experiment, so `dlbench compare NAME` needs no file."""
        self.client.set_experiment_tag(self.experiment_id, TAG_SPEC, json.dumps(raw))

    def create_run(self, name: str, tags: Mapping[str, str], parent_id: str | None = None,
                   params: Mapping[str, Any] | None = None, dataset: Mapping[str, Any] | None = None) -> str:
        """A new run with its tags, params and (`dataset_input`) its dataset input; returns its id."""
        tags = {**tags, TAG_RUN_NAME: name}
        if parent_id:
            tags[TAG_PARENT] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags={k: str(v) for k, v in tags.items()})
        if params:
            self.log_params(run.info.run_id, params)
        if dataset:
            self.log_dataset(run.info.run_id, **dataset)
        return run.info.run_id

    def log_dataset(self, run_id: str, name: str, digest: str, source: Mapping[str, Any],
                    profile: Mapping[str, Any]) -> None:
        """The run's data as an MLflow dataset input: the runs table's Dataset column, so runs filter by data."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        ds = Dataset(name=name, digest=digest, source_type="dlbench", source=json.dumps(source),
                     profile=json.dumps(profile))
        self.client.log_inputs(run_id, datasets=[DatasetInput(ds, tags=[InputTag("mlflow.data.context", "training")])])

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def epoch_logger(self, run_id: str, flush_every: float = EPOCH_FLUSH_SECONDS):
        """An epoch hook that logs Keras's logs under their own keys with step = epoch (0-based).

        Epochs are buffered and written in one batch at most every `flush_every` seconds and when the run ends
        (`end_run`): one SQLite transaction per epoch cost ~4% of a small model's training time (bench/CHANGES.md).
        The MLflow UI still sees live curves, at most `flush_every` seconds late.
        """
        pending = self._pending.setdefault(run_id, [])
        last = [time.monotonic()]

        def hook(epoch: int, logs: Mapping[str, float]) -> None:
            now = int(time.time() * 1000)
            pending.extend(Metric(k, float(v), now, epoch) for k, v in logs.items())
            if time.monotonic() - last[0] >= flush_every:
                self.flush(run_id)
                last[0] = time.monotonic()

        return hook

    def flush(self, run_id: str) -> None:
        """Write the run's buffered epoch metrics (MLflow takes at most 1000 metrics per batch)."""
        pending = self._pending.get(run_id)
        while pending:
            self.client.log_batch(run_id, metrics=pending[:1000])
            del pending[:1000]

    def end_run(self, run_id: str, state: str, reason: str | None = None) -> None:
        self.flush(run_id)
        self._pending.pop(run_id, None)
        tags = {TAG_STATE: state}
        if reason:
            tags[TAG_REASON] = reason[:4000]
        self.set_tags(run_id, tags)
        self.client.set_terminated(run_id, _MLFLOW_STATUS.get(state, "FINISHED"))

    def log_artifact(self, run_id: str, path: str | Path, folder: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), folder)

    @contextlib.contextmanager
    def system_metrics(self, run_id: str, resume: bool = False) -> Iterator[None]:
        """Log this machine's CPU and memory use (and GPU utilisation and memory, with nvidia-ml-py installed: the
        `gpu` extra) to the run as MLflow system metrics (`system/...`), every SYSTEM_METRICS_SECONDS and once at
        the end, so short runs get a sample too. `resume` continues the steps of a resumed run."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        with _quiet("mlflow.system_metrics"):
            monitor = SystemMetricsMonitor(run_id, sampling_interval=SYSTEM_METRICS_SECONDS, resume_logging=resume,
                                           tracking_uri=self.uri)
            first_step = monitor._logging_step
            monitor.start()
        try:
            yield
        finally:
            with _quiet("mlflow.system_metrics"):
                monitor.finish()
                if monitor._logging_step == first_step:  # ended before the first interval: log one sample now
                    monitor.collect_metrics()
                    monitor.publish_metrics(monitor.aggregate_metrics())
                    monitor.mlflow_logger.flush()

    def holds_history(self, run_id: str) -> bool:
        """Whether the run holds any training metric (epochs or pretraining), system metrics aside."""
        return any(not k.startswith("system/") for k in self.client.get_run(run_id).data.metrics)

    def last_epoch(self, run_id: str) -> int:
        """The last epoch (step) whose `loss` the run holds; -1 for none."""
        return max((m.step for m in self.client.get_metric_history(run_id, "loss")), default=-1)

    # --- reading ---

    def runs(self, role: str | None = None, arm: str | None = None, status: str | None = None,
             **tags: str) -> list:
        """Runs of this experiment whose tags match (keyword names use '_' for '.': config_hash=...)."""
        clauses = []
        if role:
            clauses.append(f"tags.`{TAG_ROLE}` = '{role}'")
        if arm:
            clauses.append(f"tags.`{TAG_ARM}` = '{arm}'")
        if status:
            clauses.append(f"attributes.status = '{status}'")
        for k, v in tags.items():
            clauses.append(f"tags.`dlbench.{k}` = '{v}'")
        return list(self._search(" AND ".join(clauses)))

    def _search(self, filter_string: str) -> Iterator:
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string=filter_string, max_results=1000,
                                           page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def run(self, run_id: str):
        return self.client.get_run(run_id)

    def get_metric_history(self, run_id: str, key: str) -> list:
        return self.client.get_metric_history(run_id, key)


def stored_spec(uri: str, experiment: str) -> dict | None:
    """The spec stored on an MLflow experiment by `Tracker.store_spec`, or None."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        return None  # do not create an empty store just to look
    exp = MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
    if exp is None or TAG_SPEC not in exp.tags:
        return None
    return json.loads(exp.tags[TAG_SPEC])


def finished_repeats(uri: str, experiment: str, arm: str) -> list:
    """The finished seed repeats of an arm of an experiment in the store, of the configuration its arm run
    repeats now (its config and spec hash); [] when there are none, or no such experiment."""
    if stored_spec(uri, experiment) is None:
        return []
    client = MlflowClient(tracking_uri=uri)
    ids = [client.get_experiment_by_name(experiment).experiment_id]
    arm_runs = client.search_runs(ids, f"tags.`{TAG_ROLE}` = '{ROLE_ARM}' AND tags.`{TAG_ARM}` = '{arm}'",
                                  order_by=["attributes.start_time DESC"])
    tags = arm_runs[0].data.tags if arm_runs else {}
    if TAG_CONFIG not in tags:
        return []
    return client.search_runs(ids, f"tags.`{TAG_ROLE}` = '{ROLE_REPEAT}' AND tags.`{TAG_ARM}` = '{arm}' AND "
                              f"tags.`{TAG_CONFIG}` = '{tags[TAG_CONFIG]}' AND tags.`{TAG_SPEC_HASH}` = "
                              f"'{tags.get(TAG_SPEC_HASH)}' AND tags.`{TAG_STATE}` = '{STATE_COMPLETE}' AND "
                              "attributes.status = 'FINISHED'", max_results=1000)


def download_artifact(uri: str, run_id: str, path: str, folder: str) -> str | None:
    """A run's artifact (`path` inside its artifacts) copied into `folder`: its local path, or None if absent."""
    client = MlflowClient(tracking_uri=uri)
    parent, _, name = path.rpartition("/")
    if name not in {Path(f.path).name for f in client.list_artifacts(run_id, parent or None)}:
        return None
    return client.download_artifacts(run_id, path, folder)


def runs_page(base_url: str, experiment_id: str) -> str:
    """The UI page of an experiment's runs table (MLflow 3 otherwise opens its GenAI overview)."""
    return f"{base_url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def experiment_links(uri: str, base_url: str) -> list[str]:
    """'name: link' for each experiment of the store that dlbench wrote."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        return []
    out = []
    for exp in MlflowClient(tracking_uri=uri).search_experiments():
        if TAG_SPEC in exp.tags:
            out.append(f"{exp.name}: {runs_page(base_url, exp.experiment_id)}")
    return out


def serve_ui(uri: str, port: int) -> int:
    """Start the MLflow UI on 127.0.0.1 over the store; returns its exit status.

    The server runs in a process group of its own, stopped whole (uvicorn workers included) when this process
    ends, on Ctrl-C or SIGTERM. MLflow's job executor (consumer processes for server-side jobs, which dlbench
    never submits) is off unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION says otherwise.
    """
    import signal

    for line in experiment_links(uri, f"http://127.0.0.1:{port}"):
        print(f"  {line}", file=sys.stderr)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
           "--port", str(port)]
    root = artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    server = subprocess.Popen(cmd, env=env, start_new_session=True)

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        return server.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_group(server)


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a process started with start_new_session=True and everything in its group: SIGTERM, then SIGKILL
    after `grace` seconds."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)  # anyone left in the group?
            except ProcessLookupError:
                return
            time.sleep(0.1)
