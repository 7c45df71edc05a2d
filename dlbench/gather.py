"""Reading an experiment's results from the stores, read-only: its trials from the Optuna studies, its seed repeats
and learning curves from MLflow, and which experiment a name or a spec file means. The statistics are
comparison's, the tables and plots reporting's."""

from __future__ import annotations

import dataclasses
import functools
import statistics
from pathlib import Path

from dlbench import spec
from dlbench import tracking as T
from dlbench.comparison import ArmData, compared_metric
from dlbench.spec import Experiment, SpecError
from dlbench.storage import redact

# Medians over each arm's finished repeats; the sizes and latencies of repeats that measure them (dlbench.quantize).
COSTS = ("params_count", "flops_per_example", "examples_per_second", "model_bytes", "quantized_bytes", "latency_ms",
         "quantized_latency_ms")


def gather(exp: Experiment, storage_url: str, tracker: T.Tracker) -> list[ArmData]:
    """Each arm's finished seed repeats of its repeated configuration (MLflow) and its tuning trials (Optuna)."""
    out = []
    for arm in exp.arm_names:
        parent = tracker.runs(role=T.ROLE_ARM, arm=arm, spec_hash=exp.spec_hash)
        config = parent[0].data.tags.get(T.TAG_CONFIG) if parent else None
        repeats = tracker.runs(role=T.ROLE_REPEAT, arm=arm, config_hash=config) if config else []
        metric = compared_metric(exp)
        done = [r for r in repeats if r.info.status == "FINISHED" and metric in r.data.metrics]
        study = study_of(exp, storage_url, arm)
        # A repeat that quantized its model is compared on the quantized model's metric (its float one kept apart).
        quantized = [r for r in done if f"quantized_{metric}" in r.data.metrics]
        out.append(ArmData(
            arm=arm, values={int(r.data.tags[T.TAG_SEED]): r.data.metrics.get(f"quantized_{metric}",
                                                                             r.data.metrics[metric]) for r in done},
            tuned=[r.data.metrics.get(f"best_{exp.metric}", float("nan")) for r in done],
            repeats_failed=sum(r.info.status == "FAILED" for r in repeats),
            costs={k: _median([r.data.metrics[k] for r in done if k in r.data.metrics]) for k in COSTS},
            model=done[0].data.params.get("model") if done else None,
            trials=study.get_trials(deepcopy=False) if study else [],
            directions=list(study.directions) if study else [],
            quantize=_quantize_label(quantized[0].data.params) if quantized else None,
            float_values={int(r.data.tags[T.TAG_SEED]): r.data.metrics[metric] for r in quantized},
        ))
    return out


def _quantize_label(params: dict[str, str]) -> str:
    """"int8", "int8 per_tensor", "float16": how a repeat's model was quantized, from its run's params."""
    return " ".join([params.get("quantize", "?"), *([params["quantize_granularity"]] if params.get(
        "quantize_granularity", "per_channel") != "per_channel" else [])])


def learning_curves(exp: Experiment, tracker: T.Tracker) -> dict[str, list[list[float]]]:
    """Each arm's finished seed repeats' tuned metric per epoch."""
    curves: dict[str, list[list[float]]] = {}
    for arm in exp.arm_names:
        parent = tracker.runs(role=T.ROLE_ARM, arm=arm, spec_hash=exp.spec_hash)
        config = parent[0].data.tags.get(T.TAG_CONFIG) if parent else None
        runs = tracker.runs(role=T.ROLE_REPEAT, arm=arm, config_hash=config, status="FINISHED") if config else []
        curves[arm] = [[m.value for m in sorted(tracker.get_metric_history(r.info.run_id, exp.metric),
                                                 key=lambda m: m.step)] for r in runs]
    return curves


def _median(xs: list[float]) -> float | None:
    return float(statistics.median(xs)) if xs else None


@functools.lru_cache(maxsize=4)
def _storage(url: str):
    """One storage per URL and process: opening a journal replays the whole file (1,000 trials: ~0.1 s)."""
    from dlbench.storage import open_storage

    return open_storage(url)


def study_of(exp: Experiment, storage_url: str, arm: str):
    import optuna

    try:
        return optuna.load_study(study_name=exp.study_name(arm), storage=_storage(storage_url))
    except KeyError:
        return None


def resolve(spec_or_name: str, tracking_uri: str) -> Experiment:
    """The experiment to compare: a spec file, or the name of an experiment in the tracking store.

    A run stores its (possibly overridden) spec on its MLflow experiment, so a name is enough, and a spec file
    whose experiment ran with other budget flags is compared as it ran. The prose the spec hash leaves out (the
    description and `[reference]`) is taken from the file when one is given, so a reference completed after the
    run is compared too.

    Raises:
        SpecError: (exit 2) for an unknown name or a malformed file.
    """
    path = Path(spec_or_name)
    exp = _with_sources(spec.load(path)) if path.suffix == ".toml" or path.is_file() else None
    name = exp.name if exp else spec_or_name
    stored = T.stored_spec(tracking_uri, name)
    if stored is not None:
        ran = spec.parse(stored, f"{name} (as stored in {redact(tracking_uri)})")
        if exp is None:
            return ran
        if ran.spec_hash == exp.spec_hash:
            return dataclasses.replace(ran, description=exp.description,
                                       reference=spec.for_arms(exp.reference, ran.arm_names))
    if exp is not None:
        if stored is None:
            raise SpecError(path, "name", f"experiment {name!r} has no finished seed repeats yet in "
                            f"{redact(tracking_uri)}; run `dlbench run {path}` first")
        return exp
    raise SpecError(spec_or_name, "name", f"no experiment named {name!r} in {redact(tracking_uri)}; run it first "
                    "with `dlbench run experiments/<file>.toml`, or pass the spec file (see `dlbench list experiments`)")


def _with_sources(exp: Experiment) -> Experiment:
    """The file's experiment with the digests of the plugins it names (part of its hash), when they import here;
    else as it is (its stored twin, found by name, is then compared)."""
    from dlbench import plugins

    try:
        return plugins.attach(exp)
    except SpecError:
        return exp
