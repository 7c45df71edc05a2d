"""The technique experiments (dlbench.recipe and the blocks' switches). Fast tier: every arm of every one builds its
model and compiles with its recipe, and one runs end to end with --quick in this process. Slow tier (`make
reproduce`): every one runs end to end with --quick, all arms."""

from __future__ import annotations

import pytest

from conftest import ROOT, quick_run
from dlbench import data, models, recipe, spaces
from dlbench.spec import Choice, Range

TECHNIQUE_SPECS = ["dropout", "batch_norm", "optimizers", "lr_schedules", "weight_decay", "batch_size", "init",
                   "early_stopping", "losses", "activations", "depth", "augmentation"]


def _low_end(exp, arm) -> dict:
    """The searched values at the low end of their ranges (first choices)."""
    values = {}
    for name, value in exp.params_for(arm).items():
        if isinstance(value, Range):
            values[name] = value.low
        elif isinstance(value, Choice):
            values[name] = value.choices[0]
    return values


@pytest.mark.parametrize("name", TECHNIQUE_SPECS)
def test_every_arm_builds_and_compiles_with_its_recipe(name):
    exp = spaces.load(ROOT / "experiments" / f"{name}.toml")
    assert exp.reference is not None and exp.description
    header = (ROOT / "experiments" / f"{name}.toml").read_text().splitlines()[:5]
    assert any("Cost: " in line and "on 2 CPU cores" in line for line in header)
    info = data.load(exp.dataset.name, exp.dataset.options)
    for arm in exp.arms:
        params = spaces.resolve(exp, arm, _low_end(exp, arm))
        model = models.get(params.model_name).build(params.model, info)
        model.compile(optimizer=recipe.optimizer(params.train, 10, exp.budget.epochs),
                      loss=recipe.classifier_loss(params.train) or "sparse_categorical_crossentropy")
        assert model.output_shape == (None, info.num_classes), (name, arm.name)


@pytest.mark.e2e
def test_the_early_stopping_experiment_runs_quick_with_its_switches_in_mlflow(stores):
    exp, runs = quick_run("early_stopping", *stores)
    assert sorted(runs["tags.dlbench.arm"]) == sorted(exp.arm_names)
    assert (runs["metrics.test_accuracy"] > 0).all() and (runs["metrics.epochs_trained"] == 1).all()
    assert dict(zip(runs["tags.dlbench.arm"], runs["params.select"])) == {"last": "last", "best": "best",
                                                                         "patience": "best"}
    assert runs.filter(like="metrics.grad_norm/").notna().all().all()  # every layer's norm reaches MLflow
    assert (runs.filter(like="metrics.learning_rate") > 0).all().all()


@pytest.mark.slow
@pytest.mark.parametrize("name", TECHNIQUE_SPECS)
def test_technique_experiment_runsquick_run(name, stores):
    exp, runs = quick_run(name, *stores)
    # An arm whose one quick trial diverged (a learning rate drawn too high for one epoch) has no repeat.
    assert set(runs["tags.dlbench.arm"]) <= set(exp.arm_names) and len(runs) >= len(exp.arm_names) // 2
    assert (runs["metrics.test_accuracy"] > 0).all()
