"""Spec validation: every malformed spec is refused before anything runs, naming the file and the field."""

from __future__ import annotations

import pytest

from conftest import ROOT, SPECS, write_spec
from dlbench import cli, models, spaces, spec
from dlbench.spec import Choice, Range, SpecError

GOOD = (SPECS / "tiny.toml").read_text()


def _run(capsys, tmp_path, text: str, *extra: str) -> tuple[int, str]:
    path = write_spec(tmp_path, text)
    storage, mlruns = tmp_path / "studies", tmp_path / "mlruns"
    rc = cli.main(["run", str(path), "--storage", str(storage), "--tracking-uri", f"sqlite:///{mlruns}/mlflow.db",
                   *extra])
    err = capsys.readouterr().err
    # Nothing may be created for an invalid spec.
    assert not storage.exists() and not mlruns.exists()
    return rc, err


@pytest.mark.parametrize(
    "change, field, words",
    [
        (("pruner = \"none\"", "pruner = \"none\"\ncolour = \"red\""), "colour", "unknown key; allowed keys here"),
        (("name = \"spirals\"", "name = \"nosuchdata\""), "dataset",
         "known datasets: adding, cifar10, copy_memory, digits, fashion_mnist, grid25, mnist, mnist1d, mnist5k, "
         "retrieve, reverse, ring8, sort, spirals"),
        (("model = \"mlp\"", "model = \"transformer9\""), "model", "known models: autoencoder, cnn, conv_autoencoder, gan, inception"),
        (("model = \"mlp\"", "model = \"cnn\""), "dataset", "cnn needs images (height, width, channels) or sequences"),
        (("[arms.relu]\nactivation = \"relu\"", "[arms.relu]"), "arms.relu", "empty arm"),
        (("[arms.relu]", "[arms.tanh]"), "arms.tanh", "declared twice"),
        (("low = 1e-3, high = 1e-1", "low = 1e-1, high = 1e-3"), "search.learning_rate", "low (0.1) > high (0.001)"),
        (("low = 1e-3, high = 1e-1, log = true", "low = 0, high = 1e-1, log = true"), "search.learning_rate.low",
         "log range needs low > 0"),
        (("[search]", "[search]\nkernel_size = { choices = [3, 5] }"), "search.kernel_size",
         "take no parameter 'kernel_size'"),
        (("metric = \"val_accuracy\"", "metric = \"val_auc\""), "metric", "allowed: val_loss, loss, val_accuracy"),
        (("activation = \"relu\"", "activation = \"mish\""), "arms.relu.activation", "one of 'relu', 'sigmoid'"),
        # The training-technique switches (dlbench.recipe, the blocks, the data).
        (("width = 16", "width = 16\nlr_schedule = \"linear\""), "fixed.lr_schedule",
         "one of 'constant', 'step', 'exponential', 'cosine', 'warmup_cosine', 'plateau'"),
        (("width = 16", "width = 16\nweight_decay = -0.1"), "fixed.weight_decay", "expected float (>= 0)"),
        (("width = 16", "width = 16\nl2 = -1e-4"), "fixed.l2", "expected float (>= 0)"),
        (("width = 16", "width = 16\nlr_schedule = \"step\""), "fixed.lr_schedule", "needs lr_step_epochs"),
        (("width = 16", "width = 16\noptimizer = \"momentum\"\nlr_schedule = \"warmup_cosine\""),
         "fixed.lr_schedule", "needs warmup_epochs >= 1"),
        (("width = 16", "width = 16\nweight_decay = 1e-4"), "fixed.weight_decay", "use optimizer = \"adamw\""),
        (("width = 16", "width = 16\nloss = \"hinge\"\nlabel_smoothing = 0.1"), "fixed.label_smoothing",
         "hinge\" has none"),
        (("width = 16", "width = 16\nlr_schedule = \"cosine\"\nwarmup_epochs = 3"), "fixed.warmup_epochs",
         "leaves no epoch of the budget's 3"),
        (("depth = 1", "depth = 0\nmax_norm = 3.0"), "arms.tanh", "max_norm constrains hidden layers"),
        (("n = 300", "n = 300, label_noise = 1.0"), "dataset.label_noise", "expected float (>= 0, < 1)"),
        (("[search]", "[search]\nselect = { choices = [\"best\", \"final\"] }"), "search.select.choices",
         "one of 'best', 'last'"),
        (("baseline = \"tanh\"", "baseline = \"gelu\""), "baseline", "must name one of the arms: tanh, relu"),
        (("width = 16", "width = { low = 8, high = 16 }"), "fixed.width", "move searched ranges to [search]"),
        (("width = 16", "width = 0"), "fixed.width", "not allowed"),
        (("trials = 2", "trials = 0"), "budget.trials", "at least 1"),
        (("seeds = 2", "seeds = \"two\""), "seeds", "must be an integer"),
        (("n = 300", "n = 300, shape = \"ring\""), "dataset.shape", "unknown option of dataset 'spirals'"),
        (("depth = 1", "depth = { low = 1.5, high = 3 }"), "fixed.depth", "move searched ranges"),
        # An arm may train its own model; the shared sections must then suit every arm's model.
        (("[arms.relu]", "[arms.relu]\nmodel = \"nosuch\""), "arms.relu.model", "known models: autoencoder"),
        (("[arms.relu]", "[arms.relu]\nmodel = 3"), "arms.relu.model", "registry name"),
        (("[arms.relu]\nactivation = \"relu\"", "[arms.relu]\nmodel = \"logistic\""), "fixed.depth",
         "model 'logistic' and the trainer take no parameter 'depth'"),
    ],
)
def test_invalid_spec_exits_2_naming_file_and_field(capsys, tmp_path, change, field, words):
    # Each malformed spec is rejected with exit 2; the message names the file, the field and what is allowed.
    old, new = change
    assert old in GOOD, old
    rc, err = _run(capsys, tmp_path, GOOD.replace(old, new, 1))
    assert rc == 2
    assert "spec.toml" in err
    assert f"field `{field}`" in err
    assert words in err


def test_searched_int_range_needs_integer_bounds(tmp_path):
    text = GOOD.replace("[search]", "[search]\ndepth = { low = 1.5, high = 3 }").replace("depth = 1\n", "")
    with pytest.raises(SpecError, match=r"search.depth.*integer"):
        spaces.check(spec.load(write_spec(tmp_path, text)))


def test_missing_file_and_bad_flags_exit_2(capsys, tmp_path):
    assert cli.main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "no such spec file" in capsys.readouterr().err
    rc, err = _run(capsys, tmp_path, GOOD, "--arms", "relu,gelu")
    assert rc == 2 and "unknown arm 'gelu'" in err and "field `--arms`" in err
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "x.toml", "--trials", "0"])
    assert e.value.code == 2


def test_toml_syntax_error_names_file(capsys, tmp_path):
    rc, err = _run(capsys, tmp_path, GOOD + "\n[arms.x\n")
    assert rc == 2 and "spec.toml" in err and "not valid TOML" in err


def test_good_spec_parses_into_typed_values():
    exp = spaces.load(SPECS / "tiny.toml")
    assert exp.arm_names == ("tanh", "relu")
    assert exp.search["learning_rate"] == Range(1e-3, 1e-1, log=True)
    assert exp.dataset.options == {"n": 300}
    assert exp.params_for(exp.arm("relu"))["activation"] == "relu"
    # The hash ignores the budget size but not the epochs.
    assert spec.with_overrides(exp, trials=9).spec_hash == exp.spec_hash
    assert spec.with_overrides(exp, epochs=9).spec_hash != exp.spec_hash


def test_choices_are_checked_against_the_field_type(tmp_path):
    text = GOOD.replace("[search]", "[search]\noptimizer = { choices = [\"adam\", \"lbfgs\"] }")
    with pytest.raises(SpecError, match=r"search.optimizer.choices.*'lbfgs' is not allowed"):
        spaces.check(spec.load(write_spec(tmp_path, text)))
    ok = spec.load(write_spec(tmp_path, GOOD.replace("[search]", "[search]\noptimizer = { choices = [\"adam\", \"sgd\"] }")))
    spaces.check(ok)
    assert ok.search["optimizer"] == Choice(("adam", "sgd"))


def test_shipped_experiments_validate():
    # Every experiment in experiments/ is a valid spec.
    from conftest import ROOT

    paths = sorted((ROOT / "experiments").rglob("*.toml"))  # plugins/ too
    assert len(paths) >= 2
    for path in paths:
        exp = spaces.load(path)
        assert exp.baseline in exp.arm_names


# === Pretraining, autoencoders and the few-labels data ===

AE = """\
name = "ae"
dataset = "digits"
model = "autoencoder"
metric = "val_reconstruction_error"
baseline = "plain"
budget = { trials = 1, epochs = 1 }

[fixed]
code = 8

[arms.plain]
noise = "none"

[arms.denoising]
noise = "masking"
noise_level = { low = 0.1, high = 0.5 }
"""


def test_autoencoder_spec_is_tuned_on_reconstruction_error(tmp_path):
    exp = spaces.load(write_spec(tmp_path, AE))
    assert spaces.directions(exp) == ["minimize"]
    with pytest.raises(SpecError, match=r"field `metric`.*'val_accuracy' is not produced by model 'autoencoder' on "
                                        r"dataset '\w+' \(reconstruction\); allowed: val_loss, loss, "
                                        r"val_reconstruction_error"):
        spaces.check(spec.load(write_spec(tmp_path, AE.replace("val_reconstruction_error", "val_accuracy"))))
    with pytest.raises(SpecError, match=r"allowed: val_loss, loss, val_accuracy, accuracy"):
        spaces.check(spec.load(write_spec(tmp_path, GOOD.replace("val_accuracy", "val_reconstruction_error"))))


@pytest.mark.parametrize(
    "change, words",
    [
        (("depth = 1", "depth = 1\nbatch_norm = true\npretrain = \"ae\""), "cannot be combined with batch_norm"),
        (("depth = 1", "depth = 0\npretrain = \"dae\""), "needs hidden layers to pretrain"),
        (("[arms.relu]\n", "[arms.relu]\npretrain = \"ae\"\ndepth = { choices = [0, 2] }\n"), "got depth = 0"),
    ],
)
def test_pretraining_with_batch_norm_or_without_hidden_layers_is_refused(tmp_path, change, words):
    old, new = change
    text = GOOD.replace(old, new, 1)
    if "depth = { choices" in new:
        text = text.replace("depth = 1\n", "", 1)
    with pytest.raises(SpecError, match=r"field `arms\.\w+`: .*do not go together: .*" + words):
        spaces.check(spec.load(write_spec(tmp_path, text)))


def test_pretraining_hyperparameters_are_searched_like_any_other(tmp_path):
    import optuna

    text = GOOD.replace("[search]", "[search]\npretrain_epochs = { low = 2, high = 5 }\n"
                        "pretrain_learning_rate = { low = 1e-3, high = 1.0, log = true }\n"
                        "pretrain_noise = { low = 0.1, high = 0.5 }").replace("depth = 1", "depth = 2\npretrain = \"dae\"")
    exp = spaces.load(write_spec(tmp_path, text))
    trial = optuna.trial.FixedTrial({"learning_rate": 0.01, "pretrain_epochs": 3, "pretrain_learning_rate": 0.2,
                                     "pretrain_noise": 0.4})
    params = spaces.sample(trial, exp, exp.arm("relu"))
    assert (params.model.pretrain, params.model.pretrain_epochs, params.model.pretrain_learning_rate,
            params.model.pretrain_noise) == ("dae", 3, 0.2, 0.4)
    assert spaces.searched_names(exp, exp.arm("relu")) == ["learning_rate", "pretrain_epochs",
                                                           "pretrain_learning_rate", "pretrain_noise"]


def test_labels_per_class_conflicts_and_excess_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="field `dataset`: give either train_size or labels_per_class"):
        spaces.check(spec.load(write_spec(tmp_path, AE.replace('dataset = "digits"', 'dataset = { name = "digits", '
                                                               'labels_per_class = 20, train_size = 300 }'))))
    with pytest.raises(SpecError, match="field `dataset`: labels_per_class=200 is more than the training rows"):
        spaces.check(spec.load(write_spec(tmp_path, AE.replace('dataset = "digits"', 'dataset = { name = "digits", '
                                                               'labels_per_class = 200 }'))))


def test_reference_tolerance_needs_results_in_the_compared_metric(tmp_path):
    ref = ('\n[reference]\nsource = "PCA"\nclaim = "same error"\nresults = { plain = 0.05 }\n'
           'results_metric = "{m}"\ntolerance = 0.05\n')
    ok = spec.load(write_spec(tmp_path, AE + ref.replace("{m}", "test_reconstruction_error")))
    assert ok.reference.tolerance == 0.05
    assert spec.parse(spec.to_raw(ok)).reference.tolerance == 0.05
    with pytest.raises(SpecError, match="field `reference.tolerance`: .*results_metric = 'test_reconstruction_error'"):
        spec.load(write_spec(tmp_path, AE + ref.replace("{m}", "test error (%)")))


def test_a_subset_of_arms_keeps_only_their_reference_values(tmp_path):
    # `--arms k2,k8` runs (and stores) a spec whose reference names only the arms that run, so it parses again.
    from conftest import ROOT

    exp = spec.with_overrides(spaces.load(ROOT / "experiments" / "linear_ae_vs_pca.toml"), arms=["k2", "k8"])
    assert sorted(exp.reference.results) == ["k2", "k8"] and exp.reference.tolerance == 0.05
    assert spec.parse(spec.to_raw(exp)).arm_names == ("k2", "k8")


def test_arms_may_train_different_models(tmp_path):
    text = GOOD.replace("[fixed]\ndepth = 1\nwidth = 16\n", "[fixed]\n").replace(
        "[arms.tanh]\nactivation = \"tanh\"", "[arms.tanh]\nactivation = \"tanh\"\ndepth = 1").replace(
        "[arms.relu]\nactivation = \"relu\"", "[arms.relu]\nmodel = \"logistic\"")
    exp = spaces.load(write_spec(tmp_path, text))
    assert [exp.model_for(a) for a in exp.arms] == ["mlp", "logistic"]
    assert spec.parse(spec.to_raw(exp), exp.path) == exp  # the per-arm model survives storing the spec
    single = spaces.load(SPECS / "tiny.toml")
    assert exp.spec_hash != single.spec_hash


def test_the_classifier_loss_switches_are_refused_for_a_model_with_its_own_loss(tmp_path):
    text = GOOD.replace("model = \"mlp\"", "model = \"perceptron\"").replace("depth = 1\nwidth = 16\n", "")
    text = text.replace("activation = \"tanh\"", "margin = 0.0").replace("activation = \"relu\"", "loss = \"mse\"")
    with pytest.raises(SpecError, match=r"field `arms.relu.loss`: model 'perceptron' is trained with its own loss"):
        spaces.check(spec.load(write_spec(tmp_path, text)))
    # The autoencoder's own `loss` is its reconstruction loss, not the classifier switch.
    ae = spec.load(SPECS.parent.parent / "experiments" / "linear_ae_vs_pca.toml")
    spaces.check(ae)
    assert spaces._owners("autoencoder")["loss"][0] is models.get("autoencoder").hparams


def test_set_overrides_any_spec_value_and_renames_the_variant(tmp_path, capsys):
    path = write_spec(tmp_path, GOOD)
    exp = spaces.load(path, ["dataset.train_size=100", "fixed.width=8", "arms.relu.activation=gelu",
                             "budget.epochs=5"])
    assert exp.name == "tiny.train_size-100.width-8.activation-gelu.epochs-5"
    assert exp.dataset.options["train_size"] == 100 and exp.fixed["width"] == 8 and exp.budget.epochs == 5
    assert exp.arms[1].params["activation"] == "gelu"
    short = write_spec(tmp_path, GOOD.replace('dataset = { name = "spirals", n = 300 }', 'dataset = "digits"'), "s.toml")
    assert spaces.load(short, ["dataset.label_noise=0.2", "name=noisy"]).dataset.options == {"label_noise": 0.2}
    assert spaces.load(short, ["name=noisy"]).name == "noisy"
    for bad, field, words in [("width", "--set", "expected key=value"), ("fixed.width=0", "fixed.width", "not allowed"),
                              ("fixed.width.x=1", "--set", "fixed.width is a value, not a table"),
                              ("budget.epochz=3", "budget.epochz", "unknown key")]:
        rc, err = _run(capsys, tmp_path, GOOD, "--set", bad)
        assert rc == 2 and f"field `{field}`" in err and words in err, err


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").rglob("*.toml")),
                         ids=lambda p: p.stem)
def test_every_shipped_spec_survives_storing(path):
    # One schema: to_raw writes each section back through the fields parse reads, so a stored spec parses to the
    # same Experiment (what compare and resumed runs read from MLflow).
    exp = spec.load(path)
    assert spec.parse(spec.to_raw(exp), exp.path) == exp


def test_every_key_of_the_file_is_one_field_of_its_section():
    # The keys a file may write are the fields of the dataclasses (less those the code sets), nothing else.
    import dataclasses

    def keys(cls):
        return sorted(f.name for f in dataclasses.fields(cls) if f.metadata.get("in_file", True))

    assert spec._ALLOWED == {"": keys(spec.Experiment), "budget": keys(spec.Budget),
                             "reference": keys(spec.Reference)}
    assert "path" not in spec._ALLOWED[""] and "sources" not in spec._ALLOWED[""]
    full = {"name": "x", "description": "d", "dataset": {"name": "digits", "train_size": 300}, "model": "mlp",
            "metrics": ["val_accuracy", "params_count"], "metric": "val_accuracy", "baseline": "a", "seeds": 3,
            "budget": {"trials": 2, "epochs": 3}, "pruner": "none", "sampler": "qmc", "equivalence_margin": 0.02,
            "save_models": "none", "fixed": {"width": 8}, "search": {"learning_rate": {"low": 1e-3, "high": 1e-1,
                                                                                       "log": True}},
            "arms": {"a": {"activation": "relu"}, "b": {"model": "logistic", "dropout": {"choices": [0.0, 0.5]}}},
            "reference": {"source": "s", "claim": "c", "results": {"a": 1}, "results_metric": "test_accuracy",
                          "lower_is_better": False, "tolerance": 0.1}}
    exp = spec.parse(full, "full.toml")
    assert exp.reference.results == {"a": 1.0} and isinstance(exp.reference.results["a"], float)
    assert spec.to_raw(exp) == {**full, "search": {"learning_rate": {"low": 1e-3, "high": 1e-1, "log": True}}}
    assert spec.parse(spec.to_raw(exp), "full.toml") == exp
