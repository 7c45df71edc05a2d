"""Search breadth: every sampler and pruner on a tiny spec, with the errors a bad choice gets."""

from __future__ import annotations

import importlib.util
import math
import tomllib

import optuna
import pytest

import dlbench
from conftest import SPECS
from dlbench import search, spaces, study
from dlbench.spec import SpecError

TINY_FILE = SPECS / "tiny.toml"
TINY = {k: v for k, v in tomllib.loads(TINY_FILE.read_text()).items()}
TINY["fixed"] = {"depth": 1, "batch_size": 32}  # width is searched below
SPACE = {"search.learning_rate": {"low": 1e-3, "high": 1e-1, "log": True},
         "search.width": {"low": 4, "high": 16, "step": 4}}


def _ask_tell(exp, n: int) -> list[dict]:
    """n trials of the first arm's study (in memory), each parameter drawn by the sampler through
    `spaces.sample` and told a synthetic value: what a run does, without training."""
    arm = exp.arms[0]
    study_ = optuna.create_study(sampler=search.sampler(exp, 0, arm, spaces.int_params(exp, arm)),
                                 direction="maximize")
    drawn = []
    for _ in range(n):
        trial = study_.ask()
        params = spaces.sample(trial, exp, arm)
        study_.tell(trial, -abs(math.log10(params.train.learning_rate) + 2) - params.model.width / 100)
        drawn.append(dict(trial.params))
    return drawn


@pytest.mark.parametrize("name", [n for n in search.SAMPLERS if n != "gp"] + [
    pytest.param("gp", marks=pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                                reason="the gp sampler needs PyTorch (the `gp` extra)"))])
def test_every_sampler_draws_inside_the_search_space(name):
    space = {**SPACE, "search.learning_rate": {"choices": [1e-3, 1e-2, 1e-1]}} if name == "grid" else SPACE
    exp = dlbench.load_spec(TINY, sampler=name, trials=8, **space)
    assert exp.sampler == name and exp.spec_hash != dlbench.load_spec(TINY, **space).spec_hash or name == "tpe"
    drawn = _ask_tell(exp, 8)
    for p in drawn:
        assert 1e-3 <= p["learning_rate"] <= 1e-1 and p["width"] in (4, 8, 12, 16)
    assert len({tuple(sorted(p.items())) for p in drawn}) > 1


def test_grid_tries_every_point_once():
    exp = dlbench.load_spec(TINY, sampler="grid", trials=8, **{
        "search.learning_rate": {"choices": [0.01, 0.1]}, "search.width": {"low": 4, "high": 16, "step": 4}})
    drawn = _ask_tell(exp, 8)
    assert sorted((p["learning_rate"], p["width"]) for p in drawn) == [
        (lr, w) for lr in (0.01, 0.1) for w in (4, 8, 12, 16)]


def test_grid_refuses_a_continuous_range_and_more_trials_than_points():
    with pytest.raises(SpecError) as e:
        dlbench.load_spec(TINY, sampler="grid")  # tiny's learning_rate is a log range without step
    assert e.value.field == "sampler" and "learning_rate is a continuous range" in e.value.message
    with pytest.raises(SpecError) as e:
        dlbench.load_spec(TINY, sampler="grid", trials=9, **{"search.learning_rate": {"choices": [0.01, 0.1]},
                                                             "search.width": {"low": 4, "high": 16, "step": 4}})
    assert e.value.field == "budget.trials" and "grid has 8 points" in e.value.message


def test_an_unknown_sampler_or_pruner_names_the_allowed_ones():
    with pytest.raises(SpecError) as e:
        dlbench.load_spec(TINY, sampler="annealing")
    assert e.value.field == "sampler" and "'tpe'" in e.value.message and "'qmc'" in e.value.message
    with pytest.raises(SpecError) as e:
        dlbench.load_spec(TINY, pruner="asha")
    assert e.value.field == "pruner" and "'successive_halving'" in e.value.message


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="PyTorch is installed here")
def test_the_gp_sampler_without_pytorch_says_how_to_get_it():
    with pytest.raises(SpecError) as e:
        dlbench.load_spec(TINY, sampler="gp")
    assert e.value.field == "sampler" and "pip install torch" in e.value.message


@pytest.mark.parametrize("name", search.PRUNERS)
def test_every_pruner_stops_a_clearly_worse_trial_but_none(name):
    exp = dlbench.load_spec(TINY, pruner=name, epochs=9)
    s = optuna.create_study(pruner=search.pruner(exp), direction="maximize",
                            sampler=optuna.samplers.RandomSampler(seed=0))
    pruned = []
    for i in range(8):
        trial = s.ask()
        good = i < 6  # six good trials, then two far worse
        for step in range(1, 10):
            trial.report((0.9 if good else 0.1) + 0.001 * step + 0.0001 * i, step)
            if trial.should_prune():
                pruned.append(i)
                s.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            s.tell(trial, (0.9 if good else 0.1) + 0.0001 * i)
    if name == "none":
        assert pruned == []
    else:
        assert pruned and set(pruned) <= {6, 7}, pruned


def test_the_study_stores_its_sampler():
    exp = dlbench.load_spec(TINY, sampler="qmc")
    s = study.open_study(exp, exp.arms[0].name, optuna.storages.InMemoryStorage())
    assert s.user_attrs["sampler"] == "qmc" and type(s.sampler).__name__ == "QMCSampler"


# === Multi-objective search ===

MULTI = {**TINY, "metrics": ["val_accuracy", "params_count"]}


def test_metrics_make_a_multi_objective_search_with_directions_from_the_names_and_no_pruner():
    raw = {k: v for k, v in MULTI.items() if k not in ("metric", "pruner")}
    exp = dlbench.load_spec(raw)
    assert exp.metric == "val_accuracy" and exp.objectives == ("val_accuracy", "params_count")
    assert exp.multi_objective and exp.pruner == "none"
    assert spaces.directions(exp) == ["maximize", "minimize"]
    assert exp.spec_hash != dlbench.load_spec(TINY).spec_hash
    s = study.open_study(exp, exp.arms[0].name, optuna.storages.InMemoryStorage())
    assert [d.name for d in s.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert s.user_attrs["metrics"] == ["val_accuracy", "params_count"]
    # A one-element list is the single-objective search on that metric, with the same hash.
    one = dlbench.load_spec({**TINY, "metrics": ["val_accuracy"]})
    assert not one.multi_objective and one.spec_hash == dlbench.load_spec(TINY).spec_hash


@pytest.mark.parametrize("change, field, words", [
    ({"pruner": "hyperband"}, "pruner", "cannot prune"),
    ({"sampler": "cmaes"}, "sampler", "takes tpe, random, grid, gp, qmc"),
    ({"metrics": ["val_accuracy", "val_accuracy"]}, "metrics", "twice"),
    ({"metrics": []}, "metrics", "at least one"),
    ({"metrics": ["val_accuracy", "val_mse"]}, "metrics", "flops_per_example"),
    ({"metrics": ["val_loss", "params_count"]}, "metric", "must be the first"),
])
def test_a_bad_multi_objective_spec_names_the_field(change, field, words):
    with pytest.raises(SpecError) as e:
        dlbench.load_spec({**MULTI, **change})
    assert e.value.field == field and words in e.value.message, e.value


def test_the_pareto_front_keeps_exactly_the_non_dominated_points():
    from dlbench.plots import pareto_front

    # (accuracy up, flops down): b dominates d; a, b, c trade off; e equals b (neither dominates the other).
    points = [[0.9, 100], [0.8, 10], [0.95, 1000], [0.7, 50], [0.8, 10]]
    assert pareto_front(points, [True, False]) == [0, 1, 2, 4]
    assert pareto_front([[1.0, 1.0]], [True, True]) == [0]
    assert pareto_front(points, [False, True]) == [0, 2, 3]  # directions reversed: (0.8, 10) is now dominated


def test_the_configuration_repeated_is_best_in_the_first_objective_and_on_the_front():
    s = optuna.create_study(directions=["maximize", "minimize"])
    for values in ([0.9, 500], [0.9, 20], [0.8, 10], [0.9, 20]):
        s.add_trial(optuna.trial.create_trial(values=values))
    s.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    best = search.best_trial(s.trials, s.directions)
    assert best.number == 1 and study.best_trial(s).number == 1  # the tie in accuracy goes to fewer FLOPs
    assert search.best_trial([], s.directions) is None
    one = optuna.create_study(direction="minimize")
    for v in (3.0, 1.0, 2.0):
        one.add_trial(optuna.trial.create_trial(value=v))
    assert search.best_trial(one.trials, one.directions).value == 1.0 == study.best_trial(one).value


@pytest.mark.e2e
def test_a_multi_objective_run_repeats_each_arms_best_in_metric_and_draws_its_pareto_fronts(tmp_path):
    exp = dlbench.load_spec(MULTI, trials=4, search__width={"choices": [4, 32]})
    report = dlbench.run(exp, storage=str(tmp_path / "studies"), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                         progress=False)
    from dlbench.plots import pareto_front
    from dlbench.storage import open_storage

    for a in report.result.arms:
        s = optuna.load_study(study_name=exp.study_name(a.arm), storage=open_storage(str(tmp_path / "studies")))
        done = [t for t in s.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert done and all(len(t.values) == 2 and t.values[1] == int(t.values[1]) for t in done)
        assert a.best_trial == max(t.values[0] for t in done) and len(a.trial_objectives) == len(done)
        assert study.best_trial(s).values[0] == a.best_trial
        assert a.repeated_trial in pareto_front(a.trial_objectives, [True, False])
        assert a.n == exp.seeds
    assert report.result.objectives == ["val_accuracy", "params_count"]
    assert "multi-objective search over val_accuracy, params_count" in report.result.budget_note
    figures = report.plots(tmp_path / "figures")
    assert "pareto_front" in figures and figures["pareto_front"].stat().st_size > 10_000
    # The markdown lists each arm's front: exactly its non-dominated trials, cheapest last objective first.
    md = report.to_markdown()
    section = md.split("## Pareto fronts of the tuning trials")[1]
    for a in report.result.arms:
        line = next(x for x in section.splitlines() if x.startswith(f"- **{a.arm}**: "))
        front = sorted((a.trial_objectives[i] for i in pareto_front(a.trial_objectives, [True, False])),
                       key=lambda p: p[1])
        assert line.count("val_accuracy") == len(front)
        assert line.split(": ", 1)[1].split("; ")[0] == f"val_accuracy {front[0][0]:.4g}, params_count {front[0][1]:.4g}"
