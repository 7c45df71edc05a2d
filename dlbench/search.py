"""The search strategy of an arm's study: its sampler and pruner, from the spec, seeded per experiment, arm and
worker so that a rerun draws the same configurations."""

from __future__ import annotations

import hashlib
import importlib.util
import math
from typing import Any, Callable

import numpy as np
import optuna

from dlbench.spec import Arm, Choice, Experiment, Range, SpecError

__all__ = ["SAMPLERS", "MULTI_OBJECTIVE", "PRUNERS", "best_trial", "check", "sampler", "sampler_settings", "pruner", "hyperband_min_resource", "seed",
           "grid", "unavailable"]

# What each `sampler` value is, for `--help`, the README and the errors.
SAMPLERS = {
    "tpe": "Tree-structured Parzen Estimator, multivariate, with a constant liar for parallel workers (default)",
    "random": "independent uniform draws (log-uniform on log ranges)",
    "grid": "every combination of the choices and stepped ranges, each once (needs a finite grid)",
    "gp": "Gaussian-process Bayesian optimisation (Optuna's GPSampler; needs PyTorch: pip install torch)",
    "cmaes": "CMA-ES over the numeric parameters (categorical ones are drawn at random)",
    "qmc": "quasi-Monte Carlo (scrambled Sobol) points: random search that covers the space evenly",
}
MULTI_OBJECTIVE = ("tpe", "random", "grid", "gp", "qmc")  # the samplers that take several objectives
PRUNERS = ("hyperband", "successive_halving", "median", "percentile", "none")
_NEEDS = {"gp": ("torch", "pip install torch")}


def sampler_settings(exp: Experiment) -> dict[str, Any]:
    """The sampler and its settings, as stored on each study."""
    if exp.sampler != "tpe":
        return {"sampler": exp.sampler}
    # TPE's random start-up trials are counted per Hyperband bracket (Optuna's TPE only learns from trials of the
    # current trial's bracket): 5 per bracket x 2 brackets (see pruner) = 10 random trials before TPE learns,
    # where Optuna's defaults (10 x 4 brackets at min_resource=1) would spend 40. Measured: bench/CHANGES.md.
    return {"sampler": "TPESampler", "n_startup_trials": max(2, min(5, exp.budget.trials // 3)),
            "multivariate": True, "constant_liar": True}


def unavailable(name: str) -> str | None:
    """Why sampler `name` cannot run in this environment (a package it needs is missing), or None."""
    module, install = _NEEDS.get(name, (None, None))
    if module and importlib.util.find_spec(module) is None:
        return f"sampler {name!r} needs {module}, which is not installed ({install}); or choose another sampler"
    return None


def grid(exp: Experiment, arm: Arm, int_params: frozenset[str] = frozenset()) -> dict[str, list[Any]]:
    """The arm's search space as a grid: {parameter: values}. Raises ValueError naming a parameter that has no
    finite grid (a continuous range without `step`)."""
    space: dict[str, list[Any]] = {}
    for name, value in sorted(exp.params_for(arm).items()):
        if isinstance(value, Choice):
            space[name] = list(value.choices)
        elif isinstance(value, Range):
            if name in int_params and not value.log:
                space[name] = list(range(int(value.low), int(value.high) + 1, int(value.step or 1)))
            elif value.step is not None:
                n = int(math.floor((value.high - value.low) / value.step + 1e-9)) + 1
                space[name] = [float(round(value.low + i * value.step, 12)) for i in np.arange(n)]
            else:
                raise ValueError(f"{name} is a continuous range; grid search needs `step` (e.g. {{ low = "
                                 f"{value.low:g}, high = {value.high:g}, step = ... }}) or {{ choices = [...] }}")
    return space


def check(exp: Experiment, int_params: Callable[[Arm], frozenset[str]]) -> None:
    """The sampler can run here and suits the search space: `grid` needs a finite grid, at least as large as the
    trial budget (each point is tried once).

    Raises:
        SpecError: naming `sampler` or `budget.trials`.
    """
    why = unavailable(exp.sampler)
    if why:
        raise SpecError(exp.path, "sampler", why)
    if exp.multi_objective and exp.sampler not in MULTI_OBJECTIVE:
        raise SpecError(exp.path, "sampler", f"{exp.sampler!r} optimises one objective; a multi-objective search "
                        f"(metrics = {list(exp.metrics)!r}) takes {', '.join(MULTI_OBJECTIVE)}")
    if exp.sampler != "grid":
        return
    for arm in exp.arms:
        try:
            space = grid(exp, arm, int_params(arm))
        except ValueError as e:
            raise SpecError(exp.path, "sampler", f"grid (arm {arm.name}): {e}") from None
        size = math.prod(len(v) for v in space.values())
        if exp.budget.trials > size:
            raise SpecError(exp.path, "budget.trials", f"arm {arm.name}'s grid has {size} points; grid search "
                            f"tries each once, so give at most {size} trials (got {exp.budget.trials})")


def best_trial(trials, directions) -> Any:
    """The search's result: the complete trial best in the first objective (`metric`), ties and the other
    objectives of a multi-objective search broken in their order, so the trial is always on the Pareto front;
    None before a trial completes. `directions`: the study's (optuna.study.StudyDirection per objective)."""
    signs = [1.0 if d == optuna.study.StudyDirection.MAXIMIZE else -1.0 for d in directions]
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.values]
    return max(done, key=lambda t: tuple(s * v for s, v in zip(signs, t.values))) if done else None


def hyperband_min_resource(epochs: int) -> int:
    """The first rung: a ninth of the epochs, so Hyperband has 2 brackets (reduction factor 3) rather than 4."""
    return max(1, math.ceil(epochs / 9))


def pruner(exp: Experiment) -> optuna.pruners.BasePruner:
    epochs = exp.budget.epochs
    if exp.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=hyperband_min_resource(epochs), max_resource=epochs,
                                              reduction_factor=3)
    if exp.pruner == "successive_halving":  # one bracket of Hyperband's: the same first rung and reduction
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=hyperband_min_resource(epochs),
                                                      reduction_factor=3)
    if exp.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 4))
    if exp.pruner == "percentile":  # prunes below the 25th percentile: keeps more than the median pruner
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=max(1, epochs // 4))
    return optuna.pruners.NopPruner()


class _Grid(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its `study.stop()` once the grid is covered: dlbench asks and tells trials
    itself (no `optimize` loop to stop), and its trial budget, at most the grid's size (`check`), ends the search."""

    def after_trial(self, study, trial, state, values) -> None:
        return None


def seed(*parts: Any) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def sampler(exp: Experiment, seed: int, arm: Arm | None = None,
            int_params: frozenset[str] = frozenset()) -> optuna.samplers.BaseSampler:
    """The arm's sampler (`grid` needs the arm, for its grid)."""
    import warnings

    with warnings.catch_warnings():  # "QMCSampler/GPSampler is experimental": chosen knowingly in the spec
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _sampler(exp, seed, arm, int_params)


def _sampler(exp: Experiment, seed: int, arm: Arm | None, int_params: frozenset[str]) -> optuna.samplers.BaseSampler:
    name = exp.sampler
    if name == "tpe":
        s = sampler_settings(exp)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s["n_startup_trials"],
                                          multivariate=s["multivariate"], constant_liar=s["constant_liar"])
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return _Grid(grid(exp, arm, int_params), seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "cmaes":
        # Categorical parameters and the first trials are drawn at random (CMA-ES needs a numeric start).
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed % 2**32,
                                          warn_independent_sampling=False)
    raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
