"""GPU: a dlbench trial beside a bare Keras `model.fit` of the same model on one GPU, and the speed settings.

The `resnet` (depth 20) and `mobilenet` (width 0.5) builders at CIFAR-10 size, on generated 32x32x3 images (noise
with random labels: throughput only, nothing is learnt). Each configuration trains in a fresh process, so each has
its own compile caches and its own peak memory:
  (a) bare Keras `model.fit` (Keras's defaults) beside a dlbench trial (the real path: Optuna trial, MLflow run,
      lease heartbeat, system metrics, checkpoints) with the same settings; also dlbench's defaults
      (`deterministic = true`);
  (b) `precision` float32 vs mixed_bfloat16; (c) `jit_compile` true vs false (both with `deterministic = false`,
      which TensorFlow needs for XLA);
  (d) 1 vs 2 worker processes on one GPU: `dlbench run`'s placement (`--gpus I --workers-per-gpu K`) through
      `study.run`, its workers tuning only (throughput read back from the Optuna storage, as bench/workers.py does).
GPU utilisation and device memory are sampled with nvidia-ml-py (`pynvml`) when importable, else with nvidia-smi;
the backend's own peak (TensorFlow's `get_memory_info`, JAX's `memory_stats`) is reported beside them.
Runs with either Keras backend: KERAS_BACKEND=jax needs no TensorFlow.

Run: python bench/gpu.py [--models resnet,mobilenet] [--gpu INDEX]   (sized for under 8 minutes on one GPU)
     python bench/gpu.py --smoke   (every part with tiny sizes on the CPU: checks the script, measures nothing)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import ROOT, Clock, tempdir

DATASET = "generated32"
# The builders' defaults, spelt out; a smoke run takes the smallest variants (it checks the script only).
MODELS = {"full": {"resnet": {"depth": 20}, "mobilenet": {"width_multiplier": 0.5}},
          "smoke": {"resnet": {"depth": 8}, "mobilenet": {"width_multiplier": 0.25, "blocks": 2}}}
SIZES = {  # image side, training and validation rows, batch, epochs per configuration; trials, epochs per trial (d)
    "full": {"size": 32, "train": 16384, "val": 2048, "batch": 128, "epochs": 4, "trials": 4, "worker_epochs": 2},
    "smoke": {"size": 8, "train": 64, "val": 32, "batch": 16, "epochs": 2, "trials": 2, "worker_epochs": 1},
}
LIKE_KERAS = {"jit_compile": True, "deterministic": False}  # what Keras's defaults give on a GPU
CONFIGS = [  # key, label, [fixed] values of the trial (None: bare Keras)
    ("bare", "bare Keras `model.fit` (Keras's defaults)", None),
    ("trial", "dlbench trial, `jit_compile = true`, `deterministic = false`", LIKE_KERAS),
    ("defaults", "dlbench trial, dlbench's defaults (`jit_compile = \"auto\"`, `deterministic = true`)", {}),
    ("bf16", "dlbench trial, `precision = \"mixed_bfloat16\"`, `jit_compile = true`, `deterministic = false`",
     {**LIKE_KERAS, "precision": "mixed_bfloat16"}),
    ("nojit", "dlbench trial, `jit_compile = false`, `deterministic = false`", {"jit_compile": False,
                                                                               "deterministic": False}),
]
RESULT = "RESULT "  # a child's last stdout line: RESULT <json>
TITLE = "## GPU"
NOT_RUN_MARK = "Not yet run on a GPU"  # how the section starts until a GPU result replaces it
# What docs/benchmarks.md holds until this benchmark has run on a GPU (bench/run_all.py writes it).
NOT_RUN = " ".join([
    f"{TITLE}\n\n{NOT_RUN_MARK}: there is no GPU result here. The machines that ran this suite had no NVIDIA",
    "GPU, so `bench/run_all.py` skipped this benchmark. On a machine with one, with the `gpu` and `bench` extras",
    "installed (`pip install -e '.[gpu,bench]'`: TensorFlow with CUDA and nvidia-ml-py), run",
    "`python bench/run_all.py --only gpu` (sized for under 8 minutes, not yet timed on a GPU; it runs",
    "`python bench/gpu.py` and puts its section here). For the JAX backend, install `jax[cuda12]` and run `KERAS_BACKEND=jax python bench/run_all.py --only gpu`.",
    "`python bench/gpu.py --smoke` checks the script on the CPU (tiny sizes, measures nothing).",
])


# === The generated dataset (registered in every process that trains) ===


@dataclasses.dataclass(frozen=True)
class GeneratedOptions:
    train: int = 1024
    val: int = 256
    size: int = 32


def load_generated(opts: GeneratedOptions):
    """Uniform noise images (size x size x 3, in [0, 1]) with random labels of 10 classes, fixed by seed 0."""
    import numpy as np

    from dlbench.data import DatasetInfo, Split

    rng = np.random.default_rng(0)
    n = opts.train + 2 * opts.val

    def part(a: int, b: int) -> Split:
        return Split(x[a:b], y[a:b])

    x = rng.random((n, opts.size, opts.size, 3), dtype=np.float32)
    y = rng.integers(0, 10, n).astype("int32")
    return DatasetInfo(DATASET, "classification", x.shape[1:], 10, part(0, opts.train),
                       part(opts.train, opts.train + opts.val), part(opts.train + opts.val, n))


def register_dataset() -> None:
    from dlbench import data

    if DATASET not in data.names():
        data._register(DATASET, load_generated, GeneratedOptions, "generated 32x32x3 noise images (benchmark only)")


def mode(smoke: bool) -> str:
    return "smoke" if smoke else "full"


def data_options(sizes: dict) -> dict:
    return {"train": sizes["train"], "val": sizes["val"], "size": sizes["size"]}


def spec_text(name: str, model: str, fixed: dict, sizes: dict, trials: int, epochs: int, smoke: bool) -> str:
    values = {"optimizer": "adam", "learning_rate": 1e-3, "batch_size": sizes["batch"], **fixed}
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    arm = [f"{k} = {json.dumps(v)}" for k, v in MODELS[mode(smoke)][model].items()]
    options = ", ".join(f"{k} = {v}" for k, v in data_options(sizes).items())
    return "\n".join([
        f'name = "{name}"',
        f'dataset = {{ name = "{DATASET}", {options} }}',
        f'model = "{model}"', 'metric = "val_accuracy"', f'baseline = "{model}"', "seeds = 1",
        f"budget = {{ trials = {trials}, epochs = {epochs} }}", 'pruner = "none"', 'save_models = "none"', "",
        "[fixed]", *lines, "", f"[arms.{model}]", *arm, ""])


# === GPU sampling ===


class Sampler:
    """Samples one GPU's utilisation (%) and device memory in use (MiB) from a thread: NVML, else nvidia-smi."""

    def __init__(self, index: str | None, every: float = 0.1):
        self.index, self.every = index, every
        self.samples: list[tuple[float, float, float]] = []  # (time.time(), utilisation %, memory MiB)
        self.source = "none"
        self._read = None
        if index is None:
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(int(index))

            def nvml() -> tuple[float, float]:
                return (float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                        pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20)

            nvml()
            self._read, self.source = nvml, "nvidia-ml-py"
        except Exception:  # noqa: BLE001 - not installed, or no driver: try nvidia-smi
            if shutil.which("nvidia-smi"):
                self.every = max(every, 0.5)  # a process per sample

                def smi() -> tuple[float, float]:
                    out = subprocess.run(["nvidia-smi", "-i", index, "--query-gpu=utilization.gpu,memory.used",
                                          "--format=csv,noheader,nounits"], capture_output=True, text=True,
                                         timeout=10, check=True).stdout
                    util, mem = out.strip().splitlines()[0].split(",")
                    return float(util), float(mem)

                try:
                    smi()
                    self._read, self.source = smi, "nvidia-smi"
                except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                    pass
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpu-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), *self._read()))
            except Exception:  # noqa: BLE001 - a missed sample is only a gap
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> "Sampler":
        if self._read is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._read is not None:
            self._stop.set()
            self._thread.join(timeout=10)

    def summary(self, start: float | None = None, end: float | None = None) -> dict:
        """Mean utilisation over [start, end] (time.time(); default all) and the peak memory of the whole span."""
        inside = [s for s in self.samples if (start is None or s[0] >= start) and (end is None or s[0] <= end)]
        return {"util": sum(s[1] for s in inside) / len(inside) if inside else None,
                "memory_mib": max((s[2] for s in self.samples), default=None), "samples": len(inside),
                "source": self.source}


def backend_memory() -> tuple[callable, callable]:
    """(reset, peak MiB or None) of the backend's own GPU allocator."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return (lambda: None), (lambda: None)
        return ((lambda: tf.config.experimental.reset_memory_stats("GPU:0")),
                (lambda: tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20))
    if keras.backend.backend() == "jax":
        import jax

        def peak():
            stats = jax.local_devices()[0].memory_stats() or {}
            return stats["peak_bytes_in_use"] / 2**20 if "peak_bytes_in_use" in stats else None

        return (lambda: None), peak  # JAX's peak is the process's, and each configuration has its own process
    return (lambda: None), (lambda: None)


# === Children: one configuration each ===


class Stopped(RuntimeError):
    """A trial crashed: stop at the first crash rather than retrying."""


def child_fit(job: dict) -> dict:
    """Train one configuration; examples/s after the first epoch and over the whole run, GPU figures."""
    from dlbench import runtime

    fixed = job["fixed"]
    runtime.prepare_environment(fixed is not None and fixed.get("deterministic", True))  # before the backend
    from dlbench.progress import Progress, quiet_libraries

    quiet_libraries()
    register_dataset()
    import keras

    device = runtime.device()
    if not job["smoke"] and not device.startswith("GPU"):
        raise SystemExit(f"the Keras backend ({keras.backend.backend()}) trains on {device}, not a GPU: install "
                         "tensorflow[and-cuda] (the `gpu` extra) or jax[cuda12], or check CUDA_VISIBLE_DEVICES")
    sizes, model_name = job["sizes"], job["model"]
    epochs, n_train = sizes["epochs"], sizes["train"]
    ends: list[float] = []
    reset, peak = backend_memory()
    sampler = Sampler(job["gpu"])
    if fixed is None:  # bare Keras: what a user writes around the same builder
        from dlbench import data, models

        info = data.load(DATASET, data_options(sizes))
        entry = models.get(model_name)
        keras.utils.set_random_seed(0)
        reset()
        with sampler, Clock() as c:
            model = entry.build(entry.hparams(**MODELS[mode(job["smoke"])][model_name]), info)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            model.fit(info.train.x, info.train.y, batch_size=sizes["batch"], epochs=epochs, verbose=0,
                      validation_data=(info.val.x, info.val.y),
                      callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: ends.append(time.time()))])
        settings = {"precision": "float32", "jit_compile": str(bool(model.jit_compile)).lower(),
                    "determinism": "off"}
    else:  # the real path, as bench/overhead.py times it
        from dlbench import spaces, study
        from dlbench import tracking as T

        class Recorder(Progress):
            def epoch(self, item, epoch, logs, metric):
                ends.append(time.time())

            def note(self, text):
                raise Stopped(text)

        folder = job["folder"]
        path = Path(folder) / f"{job['name']}.toml"
        path.write_text(spec_text(job["name"], model_name, fixed, sizes, trials=1, epochs=epochs, smoke=job["smoke"]))
        exp = spaces.load(path)
        worker = study.Worker(exp, study.Settings(storage=f"{folder}/studies", tracking_uri=f"sqlite:///{folder}/"
                                                  "mlflow.db", progress=False), progress=Recorder(enabled=False))
        reset()
        with sampler, Clock() as c:
            worker.tune(exp.arms[0])
        run = worker.tracker.runs(role=T.ROLE_TRIAL)[0]
        settings = {k: run.data.tags.get(tag, "?") for k, tag in (("precision", T.TAG_PRECISION),
                                                                   ("jit_compile", T.TAG_JIT),
                                                                   ("determinism", T.TAG_DETERMINISM))}
    steady = n_train * (len(ends) - 1) / (ends[-1] - ends[0]) if len(ends) > 1 else None
    return {"device": device, "backend": keras.backend.backend(), "settings": settings, "seconds": c.seconds,
            "steady": steady, "whole": n_train * epochs / c.seconds,
            "gpu": sampler.summary(ends[0] if ends else None, ends[-1] if ends else None),
            "backend_peak_mib": peak()}


def _tuning_worker(exp, settings, worker: int, threads: int) -> None:
    """A `dlbench run` worker (study._worker_main) that tunes only and knows the generated dataset."""
    from dlbench import runtime, study
    from dlbench.progress import quiet_libraries

    runtime.prepare_environment(study.wants_determinism(exp))
    quiet_libraries()
    register_dataset()
    w = study.Worker(exp, settings, worker=worker, threads=threads)
    for arm in exp.arms:
        w.tune(arm)


def child_workers(job: dict) -> dict:
    """`dlbench run SPEC --gpus I --workers-per-gpu K` (study.run with the same Settings), tuning only."""
    import optuna
    from optuna.trial import TrialState

    from dlbench import gpus, spaces, storage, study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    register_dataset()
    sizes, folder, k = job["sizes"], job["folder"], job["per_gpu"]
    chosen = gpus.select(job["gpu"], gpus.detect())  # what `--gpus` does (DLBENCH_FAKE_GPUS in a smoke run)
    path = Path(folder) / f"{job['name']}.toml"
    path.write_text(spec_text(job["name"], job["model"], LIKE_KERAS, sizes, trials=sizes["trials"],
                              epochs=sizes["worker_epochs"], smoke=job["smoke"]))
    exp = spaces.load(path)
    settings = study.Settings(storage=f"{folder}/studies", tracking_uri=f"sqlite:///{folder}/mlflow.db",
                              progress=False, gpus=tuple(chosen), workers_per_gpu=k)
    study._worker_main = _tuning_worker  # spawned by study.run with the placement environment of --gpus
    with Sampler(None if job["smoke"] else chosen[0]) as sampler, Clock() as c:
        study.run(exp, settings)
    s = optuna.load_study(study_name=exp.study_name(exp.arms[0].name), storage=storage.open_storage(
        settings.storage))
    done = s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) != sizes["trials"]:
        reasons = {str(t.user_attrs.get(study.A_REASON, t.state.name)) for t in s.get_trials(deepcopy=False)}
        raise RuntimeError(f"{len(done)} of {sizes['trials']} trials finished: {'; '.join(sorted(reasons))}")
    start = min(t.datetime_start for t in done).timestamp()
    end = max(t.datetime_complete for t in done).timestamp()
    span = end - start
    return {"seconds": c.seconds, "span": span, "trials_per_hour": len(done) / span * 3600,
            "examples": len(done) * sizes["worker_epochs"] * sizes["train"] / span,
            "gpu": sampler.summary(start, end), "workers": k}


def child(job: dict) -> None:
    try:
        result = child_workers(job) if job["kind"] == "workers" else child_fit(job)
    except Stopped as e:
        result = {"error": str(e).splitlines()[0]}
    print(RESULT + json.dumps(result), flush=True)


# === The parent: runs the children, writes the section ===


def run_child(job: dict, env: dict, timeout: float) -> dict:
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or [f"exit status {proc.returncode}"]
        print(f"   {job['name']} failed:\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
        return {"error": tail[0][:300]}
    result = json.loads(lines[-1][len(RESULT):])
    note = f" ({result['error']})" if "error" in result else ""
    print(f"   {job['name']}: {time.perf_counter() - started:.0f} s{note}", file=sys.stderr, flush=True)
    return result


def versions() -> str:
    out = []
    for pkg in ("keras", "tensorflow", "jax", "jaxlib", "optuna", "mlflow", "nvidia-ml-py"):
        try:
            out.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def _num(x: float | None, fmt: str = "{:,.0f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _ratio(a: dict, b: dict, key: str = "steady") -> float | None:
    return a[key] / b[key] if a.get(key) and b.get(key) else None


def run(models: list[str], gpu: str | None, smoke: bool, command: str) -> tuple[str, bool]:
    """(the section, whether any configuration ran)."""
    from dlbench import gpus, runtime

    sizes = SIZES[mode(smoke)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_FORCE_GPU_ALLOW_GROWTH": "true",
           "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    if smoke:
        env.update({"CUDA_VISIBLE_DEVICES": "", gpus.FAKE_ENV: "0:Fake"})
        shown = [("0", "Fake (smoke run: the workers train on the CPU)")]
    else:
        shown = gpus.detect()
        if not shown:
            raise SystemExit("no NVIDIA GPU on this machine (nvidia-smi shows none); run with --smoke to check the "
                             "script on the CPU")
    try:
        index = gpus.select(gpu, shown)[0] if gpu else shown[0][0]  # a single index, as --gpus takes it
    except ValueError as e:
        raise SystemExit(str(e)) from None
    name = dict(shown)[index]
    if not smoke:
        env["CUDA_VISIBLE_DEVICES"] = index
    backend = runtime.backend_name()
    folder = tempdir("gpu")
    timeout = 120 if smoke else 300
    start = time.perf_counter()
    fits: dict[tuple[str, str], dict] = {}
    for model in models:
        for key, _, fixed in CONFIGS:
            job_sizes = dict(sizes)
            if key == "nojit" and backend == "jax":  # JAX without jit runs every op eagerly: far slower
                job_sizes["train"] = max(sizes["batch"] * 2, sizes["train"] // 8)
            job = {"kind": "fit", "name": f"gpu-{model}-{key}", "model": model, "fixed": fixed, "sizes": job_sizes,
                   "folder": folder, "gpu": None if smoke else index, "smoke": smoke}
            fits[model, key] = run_child(job, env, timeout)
            fits[model, key]["train"] = job_sizes["train"]
    workers: dict[int, dict] = {}
    for k in (1, 2):
        job = {"kind": "workers", "name": f"gpu-workers-{k}", "model": models[0], "per_gpu": k, "sizes": sizes,
               "folder": folder, "gpu": index, "smoke": smoke}
        w_env = dict(env)
        w_env.pop("CUDA_VISIBLE_DEVICES", None)  # the placement sets it per worker; the sampler needs the index
        workers[k] = run_child(job, w_env, timeout * 2)
    total = time.perf_counter() - start
    failed = [f"{m} {k}: {r['error']}" for (m, k), r in fits.items() if "error" in r]
    failed += [f"{k} worker(s): {r['error']}" for k, r in workers.items() if "error" in r]
    device = next((r["device"] for r in fits.values() if "device" in r), "?")

    built = "; ".join(f"`{m}` " + ", ".join(f"{k} = {v}" for k, v in MODELS[mode(smoke)][m].items())
                      for m in models) + ("" if smoke else " (the builders' defaults)")
    title = TITLE if not smoke else "## GPU (SMOKE RUN on the CPU: tiny sizes, no measurement; not for docs)"
    lines = [
        title, "",
        f"Command: `{command}` on {datetime.date.today().isoformat()}; GPU {index}: {name}; Keras backend "
        f"{backend} (trains on {device}); {versions()}; {os.cpu_count()} CPU cores, {platform.machine()}, Python "
        f"{platform.python_version()}. Whole benchmark: {total / 60:.1f} min.",
        "",
        f"Generated data: {sizes['train']:,} training and {sizes['val']:,} validation images of "
        f"{sizes['size']}x{sizes['size']}x3 (noise, random labels: throughput only), batch {sizes['batch']}, "
        f"{sizes['epochs']} epochs, Adam; models from dlbench's builders: {built}. Each row is a fresh "
        "process, run once. Examples/s \"after the first epoch\": training examples of the later epochs over their "
        "seconds (validation included; the first epoch holds tracing and compilation); \"whole run\": all training "
        "examples over the seconds from building the model to the end of training (for a trial, from claiming it "
        "to its end). GPU utilisation: mean over the epochs after the first; memory: peak device memory in use "
        "(the process's whole allocator pool, with TensorFlow's memory growth on and JAX's preallocation off) / "
        "the backend's own peak allocation.",
        "",
        "| model | run | in force (precision, XLA, determinism) | examples/s after the first epoch | "
        "examples/s whole run | GPU utilisation % | peak GPU memory MiB (device / backend) |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {key: label for key, label, _ in CONFIGS}
    for (model, key), r in fits.items():
        if "error" in r:
            lines.append(f"| {model} | {labels[key]} | failed: {r['error']} | | | | |")
            continue
        s, g = r["settings"], r["gpu"]
        scaled = f" ({r['train']:,} training rows)" if r["train"] != sizes["train"] else ""
        lines.append(f"| {model} | {labels[key]}{scaled} | {s['precision']}, {s['jit_compile']}, {s['determinism']} "
                     f"| {_num(r['steady'])} | {_num(r['whole'])} | {_num(g['util'])} | "
                     f"{_num(g['memory_mib'])} / {_num(r['backend_peak_mib'])} |")

    def figure(key: str, over: str, what: str = "steady") -> str:
        parts = [f"{m} {_num(_ratio(fits[m, key], fits[m, over], what), '{:.2f}')}" for m in models]
        return ", ".join(parts)

    lines += [
        "",
        f"**(a) dlbench trial / bare Keras `model.fit`, examples/s after the first epoch: {figure('trial', 'bare')}"
        f"** (whole run: {figure('trial', 'bare', 'whole')}). Goal: >= 0.9. With dlbench's defaults "
        f"(`deterministic = true`) instead: {figure('defaults', 'bare')} (whole run: "
        f"{figure('defaults', 'bare', 'whole')}).",
        f"- (b) mixed_bfloat16 / float32 (dlbench trials): {figure('bf16', 'trial')} (whole run: "
        f"{figure('bf16', 'trial', 'whole')}).",
        f"- (c) `jit_compile` true / false (dlbench trials): {figure('trial', 'nojit')} (whole run: "
        f"{figure('trial', 'nojit', 'whole')}).",
        "",
        f"(d) Worker processes on GPU {index} ({models[0]}, `jit_compile = true`, `deterministic = false`): "
        f"{sizes['trials']} trials of {sizes['worker_epochs']} epochs over {sizes['train']:,} rows per run, tuning "
        "only; `study.run` with the settings of `dlbench run SPEC --gpus "
        f"{index} --workers-per-gpu K`, each worker in its own process with the GPU's placement environment. "
        "Throughput from the first trial's start to the last one's end (process start-up not counted).",
        "",
        "| workers on the GPU | trials/hour | examples/s | GPU utilisation % | peak GPU memory MiB (device) | "
        "whole command s |",
        "|---|---|---|---|---|---|",
    ]
    for k, r in workers.items():
        if "error" in r:
            lines.append(f"| {k} | failed: {r['error']} | | | | |")
        else:
            lines.append(f"| {k} | {_num(r['trials_per_hour'])} | {_num(r['examples'])} | {_num(r['gpu']['util'])} "
                         f"| {_num(r['gpu']['memory_mib'])} | {r['seconds']:.1f} |")
    if all("error" not in r for r in workers.values()):
        lines += ["", f"Speed-up 2 workers / 1 worker: {workers[2]['examples'] / workers[1]['examples']:.2f}x."]
    source = next((r["gpu"]["source"] for r in [*fits.values(), *workers.values()] if "gpu" in r), "none")
    lines += ["", f"GPU figures sampled with: {source}" + (" (none available: no NVIDIA driver)." if source == "none"
                                                          else ".")]
    if failed:
        lines += ["", "Failed: " + "; ".join(failed) + "."]
    ran = any("error" not in r for r in [*fits.values(), *workers.values()])
    return "\n".join(lines), ran


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS["full"]),
                   help="comma-separated subset of " + ", ".join(MODELS["full"]))
    p.add_argument("--gpu", help="the GPU index to use (default: the first nvidia-smi shows)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: checks the script, measures nothing")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(json.loads(a.child))
        return 0
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS["full"]]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS['full'])}")
    command = "python bench/gpu.py" + "".join(f" {x}" for x in sys.argv[1:])
    if os.environ.get("KERAS_BACKEND"):
        command = f"KERAS_BACKEND={os.environ['KERAS_BACKEND']} {command}"
    section, ran = run(models, a.gpu, a.smoke, command)
    print(section)
    failed = [line for line in section.splitlines() if line.startswith("Failed:")]
    for line in failed:
        print(line, file=sys.stderr)
    # A smoke run passes only whole; a real one reports what failed beside what ran, unless nothing ran.
    return 1 if (failed and (a.smoke or not ran)) else 0


if __name__ == "__main__":
    sys.exit(main())
