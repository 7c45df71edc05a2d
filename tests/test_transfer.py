"""Transfer learning: class-split datasets (`classes`), `freeze`, `init_from` from another arm or experiment, and
the experiment digits 0-4 -> 5-9 (experiments/transfer.toml)."""

from __future__ import annotations

import dataclasses
import tempfile

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, dlbench, quick_run, write_spec
from dlbench import data, models, spaces, spec, train, transfer
from dlbench import tracking as T
from dlbench.spec import SpecError

DIGITS = data.load("digits")


# === classes = [...]: class-split datasets ===


def test_classes_keeps_those_digits_relabelled_in_the_given_order():
    upper = data.load("digits", {"classes": [9, 5, 7]})
    assert upper.num_classes == 3
    assert sorted(np.unique(upper.train.y)) == [0, 1, 2]
    # Label 0 is digit 9, label 1 digit 5, label 2 digit 7: every image is one of those of the full dataset.
    from sklearn.datasets import load_digits

    d = load_digits()
    by_digit = {c: {r.tobytes() for r in (d.images[d.target == c][..., None] / 16.0).astype("float32").reshape(-1, 64)}
                for c in (9, 5, 7)}
    for split in (upper.train, upper.val, upper.test):
        for x, y in zip(split.x, split.y):
            assert x.tobytes() in by_digit[(9, 5, 7)[y]]
    # Every image of the three digits is in one split; validation and test shrink with the rows kept (3/10).
    assert len(upper.train) + len(upper.val) + len(upper.test) == sum(len(v) for v in by_digit.values()) == 541
    assert (len(upper.val), len(upper.test)) == (round(300 * 541 / 1797), round(300 * 541 / 1797)) == (90, 90)


def test_classes_combine_with_labels_per_class_on_the_target_task():
    few = data.load("digits", {"classes": [5, 6, 7, 8, 9], "labels_per_class": 10})
    assert few.num_classes == 5
    assert np.bincount(few.train.y).tolist() == [10] * 5
    assert len(few.train) + len(few.unlabeled) == 596 and (len(few.val), len(few.test)) == (150, 150)
    assert set(np.unique(few.val.y)) == set(range(5))
    # The labeled rows are drawn from the same class-split training rows: a subset of them.
    every = data.load("digits", {"classes": [5, 6, 7, 8, 9]})
    rows = {r.tobytes() for r in every.train.x}
    assert all(r.tobytes() in rows for r in few.train.x)
    np.testing.assert_array_equal(few.val.x, every.val.x)


def test_mnist5k_takes_classes_too():
    low = data.load("mnist5k", {"classes": [0, 1]})
    assert low.num_classes == 2 and low.input_shape == (28, 28, 1)
    assert (len(low.train), len(low.val), len(low.test)) == (600, 200, 200)
    assert np.bincount(low.train.y).tolist() == [300, 300]


@pytest.mark.parametrize("classes", [[5], [5, 5], [3, 10], [-1, 2]])
def test_classes_must_be_two_or_more_distinct_labels_of_the_dataset(classes):
    with pytest.raises(ValueError, match=r"classes must list two or more distinct labels among 0..9"):
        data.load("digits", {"classes": classes})


def test_a_list_valued_dataset_option_passes_spec_checking_hashing_and_storing(tmp_path):
    text = _spec("digits_low", "[arms.a]\nwidth = 8\n").replace('name = "digits"', 'name = "digits"\nclasses = [0, 1, 2]')
    exp = spaces.load(write_spec(tmp_path, text))
    assert exp.dataset.options["classes"] == (0, 1, 2)
    assert spec.parse(spec.to_raw(exp), "stored").spec_hash == exp.spec_hash  # stored and read back: the same run
    other = spaces.load(write_spec(tmp_path, text.replace("[0, 1, 2]", "[2, 1, 0]")))
    assert other.spec_hash != exp.spec_hash  # another order is another labelling
    with pytest.raises(SpecError, match=r"field `dataset`: classes must list two or more distinct labels"):
        spaces.load(write_spec(tmp_path, text.replace("[0, 1, 2]", "[0, 0]")))
    with pytest.raises(SpecError, match=r"field `dataset.classes`"):
        spaces.load(write_spec(tmp_path, text.replace("[0, 1, 2]", '["a", "b"]')))
    assert spaces.load(write_spec(tmp_path, text), sets=["dataset.classes=[3, 4]"]).dataset.options["classes"] == (3, 4)


# === Blocks and freeze ===


def _mlp(depth: int = 2, width: int = 16, info=DIGITS, **kw):
    keras.utils.set_random_seed(0)
    return models.get("mlp").build(models.get("mlp").hparams(depth=depth, width=width, **kw), info)


def test_blocks_are_the_layers_with_weights_in_order_and_the_head_is_the_last():
    assert [b.name for b in transfer.blocks(_mlp())] == ["hidden_0_dense", "hidden_1_dense", "head"]
    assert len(transfer.blocks(_mlp(batch_norm=True))) == 5  # dense, batch norm, dense, batch norm, head
    assert transfer.frozen_count("all_but_head", 5) == 4 and transfer.frozen_count("none", 5) == 0
    assert transfer.frozen_count(5, 5) == 5
    with pytest.raises(ValueError, match=r"freeze = 6 is more than the model's 5 blocks"):
        transfer.frozen_count(6, 5)


@pytest.mark.parametrize("name,options,hp", [
    ("cnn", {"shape": "image"}, {}), ("rnn", {"shape": "rows"}, {}),
    ("mobilenet_v2", {"shape": "image", "image_size": 32}, {"alpha": 0.35}),
])
def test_freeze_all_but_head_leaves_only_the_output_layer_trainable_in_any_builder(name, options, hp):
    info = data.load("digits", options)
    model = models.get(name).build(models.get(name).hparams(**hp), info)
    layers = transfer.blocks(model)
    assert transfer.apply_freeze(model, "all_but_head") == len(layers) - 1
    trainable = [v for v in model.trainable_variables]
    assert [tuple(v.shape) for v in trainable] == [tuple(w.shape) for w in layers[-1].trainable_weights]
    assert tuple(layers[-1].weights[0].shape)[-1] == 10  # the head: the output layer, one unit per class


def test_frozen_kernels_stay_unchanged_by_value_and_the_others_train():
    hp = train.TrainHParams(learning_rate=0.05, freeze=1)
    holder = {}

    def build():
        model = _mlp()
        holder["initial"] = [w.copy() for w in model.get_weights()]
        holder["frozen"] = transfer.apply_freeze(model, hp.freeze)
        return model

    result = train.fit(build, DIGITS, hp, epochs=2, seed=3, monitor="val_accuracy")
    assert holder["frozen"] == 1
    before, after = holder["initial"], result.model.get_weights()
    np.testing.assert_array_equal(after[0], before[0])  # hidden_0_dense kernel
    np.testing.assert_array_equal(after[1], before[1])  # hidden_0_dense bias
    for i in (2, 4):  # dense_1 and head kernels moved
        assert np.abs(after[i] - before[i]).max() > 1e-3


# === Loading weights ===


def _source(model, name="src") -> transfer.Source:
    return transfer.Source(name, "e", "a", "run", 0, 1.0, ("digits", None), transfer.weights_of(model))


def test_init_copies_every_block_by_value_and_the_head_only_for_the_same_labels():
    source = _mlp()
    keras.utils.set_random_seed(1)
    target = models.get("mlp").build(models.get("mlp").hparams(depth=2, width=16), DIGITS)
    head = [w.copy() for w in target.get_layer("head").get_weights()]
    assert transfer.load_weights(target, _source(source), same_labels=False) == (4, 2)
    for name in ("hidden_0_dense", "hidden_1_dense"):
        for a, b in zip(target.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(target.get_layer("head").get_weights(), head):  # a new head, as initialised
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(head[0], source.get_layer("head").get_weights()[0])
    assert transfer.load_weights(target, _source(source), same_labels=True) == (6, 0)
    np.testing.assert_array_equal(target.get_layer("head").get_weights()[0], source.get_layer("head").get_weights()[0])


def test_another_number_of_classes_re_initialises_the_head_and_other_shapes_are_refused():
    five = data.load("digits", {"classes": [0, 1, 2, 3, 4]})
    target = _mlp(info=five)
    assert transfer.load_weights(target, _source(_mlp()), same_labels=True) == (4, 2)  # 10 classes there, 5 here
    with pytest.raises(ValueError, match=r"block 0 \(hidden_0_dense\) has weight shapes \[\(64, 16\), \(16,\)\] but 'src' "
                                         r"has \[\(64, 32\), \(32,\)\]"):
        transfer.load_weights(_mlp(), _source(_mlp(width=32)), same_labels=True)
    with pytest.raises(ValueError, match=r"the model has 3 blocks .* 'src' have 4"):
        transfer.load_weights(_mlp(), _source(_mlp(depth=3)), same_labels=True)


def test_a_keras_applications_original_inits_from_another_with_a_new_head_for_other_classes():
    # No downloaded weights: the originals are built with weights=None, and init_from is their only pretraining.
    entry = models.get("mobilenet_v2")
    ten = data.load("digits", {"shape": "image", "image_size": 32})
    five = data.load("digits", {"shape": "image", "image_size": 32, "classes": [5, 6, 7, 8, 9]})
    keras.utils.set_random_seed(0)
    source = entry.build(entry.hparams(alpha=0.35), ten)
    target = entry.build(entry.hparams(alpha=0.35), five)
    n = sum(len(b.weights) for b in transfer.blocks(target))
    assert transfer.load_weights(target, _source(source), same_labels=False) == (n - 2, 2)
    conv = transfer.blocks(target)[0]
    np.testing.assert_array_equal(conv.get_weights()[0], transfer.blocks(source)[0].get_weights()[0])
    assert tuple(transfer.blocks(target)[-1].weights[0].shape) == (1280, 5)


def test_arms_that_init_from_others_train_after_them(tmp_path):
    exp = spaces.load(write_spec(tmp_path, _same_spec()))
    assert [[a.name for a in s] for s in transfer.stages(exp)] == [["source"], ["frozen", "tuned"]]
    assert transfer.is_source(exp, "source") and not transfer.is_source(exp, "frozen")
    plain = spaces.load(write_spec(tmp_path, _spec("plain", "[arms.a]\nwidth = 8\n[arms.b]\nwidth = 4\n")))
    assert [[a.name for a in s] for s in transfer.stages(plain)] == [["a", "b"]]


# === Specs: what is checked before anything trains ===


def _spec(name: str, arms: str, dataset: str = "", depth: int = 1, width: int = 16, seeds: int = 2) -> str:
    return (f'name = "{name}"\nmodel = "mlp"\nmetric = "val_accuracy"\nbaseline = "{arms.split("]")[0][6:]}"\n'
            f'seeds = {seeds}\nbudget = {{ trials = 1, epochs = 2 }}\npruner = "none"\n'
            f'[dataset]\nname = "digits"\n{dataset}\n[fixed]\ndepth = {depth}\nwidth = {width}\n'
            f'learning_rate = 0.01\n{arms}')


def _same_spec(width: int = 16) -> str:
    return _spec("same", '[arms.source]\nactivation = "relu"\n[arms.frozen]\ninit_from = "source"\n'
                 f'freeze = "all_but_head"\n[arms.tuned]\ninit_from = "source"\nfreeze = 1\nwidth = {width}\n',
                 'classes = [0, 1, 2, 3, 4]')


@pytest.mark.parametrize("arms,field,message", [
    ('[arms.a]\nfreeze = 4\n', "arms.a.freeze", "freeze = 4 is more than the model's 2 blocks"),
    ('[arms.a]\nfreeze = { choices = ["none", 3] }\n', "arms.a.freeze", "freeze = 3 is more than"),
    ('[arms.a]\nwidth = 8\n[arms.b]\ninit_from = "c"\n', "arms.b.init_from", "'c': no arm 'c' in this experiment"),
    ('[arms.a]\ninit_from = "a"\n', "arms.a.init_from", "cannot initialise from itself"),
    ('[arms.a]\ninit_from = "b"\n[arms.b]\ninit_from = "a"\n', "arms.a.init_from", "cannot initialise from itself"),
    ('[arms.a]\nwidth = 8\n[arms.b]\ninit_from = "a"\n', "arms.b.init_from",
     r"block 0 \(hidden_0_dense\) has weight shapes \[\(64, 16\), \(16,\)\] but 'a' has \[\(64, 8\), \(8,\)\]"),
    ('[arms.a]\nwidth = 16\n[arms.b]\ninit_from = "a"\npretrain = "ae"\nactivation = "sigmoid"\n',
     "arms.b.init_from", "pretraining and init_from would both set the initial weights"),
    ('[arms.a]\ninit_from = "other/a"\npretrain = "dae"\nactivation = "sigmoid"\n',
     "arms.a.init_from", "pretraining and init_from would both set the initial weights"),
])
def test_bad_freeze_and_init_from_are_spec_errors_naming_the_field(tmp_path, arms, field, message):
    with pytest.raises(SpecError, match=rf"field `{field}`: .*{message}"):
        spaces.load(write_spec(tmp_path, _spec("bad", arms)))


# === End to end: a source arm in the same experiment, and another experiment's run ===


def _runs(uri: str, experiment: str, role: str = T.ROLE_REPEAT):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], f"tags.`{T.TAG_ROLE}` = '{role}'")


def _saved(uri: str, run_id: str) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as folder:
        path = T.download_artifact(uri, run_id, transfer.MODEL_ARTIFACT, folder)
        return keras.saving.load_model(path, compile=False).get_weights()


@pytest.mark.e2e
def test_an_arm_inits_from_the_best_repeat_of_another_arm_after_it_and_a_rerun_resumes(tmp_path, stores):
    storage, uri = stores
    path = write_spec(tmp_path, _same_spec().replace('[arms.source]\nactivation = "relu"',
                                                    '[arms.source]\nactivation = "relu"\nlearning_rate = 0.03'))
    args = ("run", str(path), "--storage", storage, "--tracking-uri", uri, "--no-progress")
    dlbench(*args)
    repeats = _runs(uri, "same")
    source = {int(r.data.tags[T.TAG_SEED]): r for r in repeats if r.data.tags[T.TAG_ARM] == "source"}
    best = max(source.values(), key=lambda r: (r.data.metrics["best_val_accuracy"], -int(r.data.tags[T.TAG_SEED])))
    # Every unit of the arms that init from `source` starts after its last repeat ended, from its best one.
    last_source_end = max(r.info.end_time for r in source.values())
    targets = [r for r in [*repeats, *_runs(uri, "same", T.ROLE_TRIAL)] if r.data.tags[T.TAG_ARM] != "source"]
    assert len(targets) == 6
    for r in targets:
        assert r.info.start_time >= last_source_end
        assert r.data.tags[T.TAG_INIT_SOURCE_RUN] == best.info.run_id
        assert r.data.tags[T.TAG_INIT_SOURCE] == f"same/source/seed-{best.data.tags[T.TAG_SEED]}"
        assert r.data.params["init_from"] == "source"
        # Same dataset, same labels: every variable is loaded, the head too.
        assert (r.data.params["init_loaded_variables"], r.data.params["init_reinitialized_variables"]) == ("4", "0")
    assert {r.data.params["frozen_blocks"] for r in targets if r.data.tags[T.TAG_ARM] == "frozen"} == {"1"}
    # By value: the frozen hidden layer of every `frozen` repeat is the best source repeat's, the head trained on.
    src = _saved(uri, best.info.run_id)
    for r in (r for r in repeats if r.data.tags[T.TAG_ARM] == "frozen"):
        mine = _saved(uri, r.info.run_id)
        np.testing.assert_array_equal(mine[0], src[0])
        np.testing.assert_array_equal(mine[1], src[1])
        assert np.abs(mine[2] - src[2]).max() > 1e-4
    assert all(r.data.params["init_from"] == "" and r.data.params["freeze"] == "none"
               for r in source.values())

    # Run again: everything is finished, nothing trains again, and the comparison is the same.
    again = dlbench(*args)
    assert len(_runs(uri, "same")) == len(repeats)
    assert len(_runs(uri, "same", T.ROLE_TRIAL)) == 3
    assert "frozen" in again.stdout


@pytest.mark.e2e
def test_with_two_workers_no_unit_of_a_target_arm_starts_before_every_source_repeat_ended(tmp_path, stores):
    storage, uri = stores
    path = write_spec(tmp_path, _same_spec().replace("seeds = 2", "seeds = 3"))
    dlbench("run", str(path), "--workers", "2", "--storage", storage, "--tracking-uri", uri, "--no-progress")
    repeats = _runs(uri, "same")
    source = [r for r in repeats if r.data.tags[T.TAG_ARM] == "source"]
    targets = [r for r in [*repeats, *_runs(uri, "same", T.ROLE_TRIAL)] if r.data.tags[T.TAG_ARM] != "source"]
    assert len(source) == 3 and len(targets) == 2 * (3 + 1)
    assert min(r.info.start_time for r in targets) >= max(r.info.end_time for r in source)
    assert len({r.data.tags[T.TAG_INIT_SOURCE_RUN] for r in targets}) == 1


@pytest.mark.e2e
def test_an_arm_run_alone_with_arms_inits_from_its_source_arms_earlier_run(tmp_path, stores):
    storage, uri = stores
    path = str(write_spec(tmp_path, _same_spec()))
    args = ("--storage", storage, "--tracking-uri", uri, "--no-progress")
    early = dlbench("run", path, "--arms", "frozen", *args, check=False)  # nothing to start from yet
    assert early.returncode == 2
    assert "field `arms.frozen.init_from`: 'source': arm 'source' of experiment 'same' has no finished" in early.stderr
    dlbench("run", path, "--arms", "source", *args)
    dlbench("run", path, "--arms", "frozen", *args)
    sources = {r.info.run_id for r in _runs(uri, "same") if r.data.tags[T.TAG_ARM] == "source"}
    frozen = [r for r in _runs(uri, "same") if r.data.tags[T.TAG_ARM] == "frozen"]
    assert len(frozen) == 2 and all(r.data.tags[T.TAG_INIT_SOURCE_RUN] in sources for r in frozen)


@pytest.mark.e2e
def test_init_from_another_experiments_run_and_its_errors_exit_2_before_training(tmp_path, stores):
    storage, uri = stores
    source = write_spec(tmp_path, _spec("low", '[arms.net]\nactivation = "relu"\n', "classes = [0, 1, 2, 3, 4]"),
                        "low.toml")
    run = ("--storage", storage, "--tracking-uri", uri, "--no-progress")

    def target(init_from: str, width: int = 16, classes: str = "[5, 6, 7]", name: str = "high") -> str:
        return str(write_spec(tmp_path, _spec(name, f'[arms.t]\ninit_from = "{init_from}"\nfreeze = 1\n',
                                              f"classes = {classes}", width=width), f"{name}.toml"))

    # Nothing in the store yet: exit 2 naming the field, and nothing was created for the target experiment.
    bad = dlbench("run", target("low/net"), *run, check=False)
    assert bad.returncode == 2
    assert "field `arms.t.init_from`: 'low/net': the tracking store" in bad.stderr and "holds no experiment 'low'" in bad.stderr
    # An experiment with the arm but no finished repeat (its spec stored, as a run does first).
    T.Tracker(uri, "low").store_spec(spec.to_raw(spaces.load(source)))
    bad = dlbench("run", target("low/net"), *run, check=False)
    assert bad.returncode == 2 and "'low/net': arm 'net' of experiment 'low' has no finished seed repeat" in bad.stderr
    assert MlflowClient(tracking_uri=uri).get_experiment_by_name("high") is None

    dlbench("run", str(source), *run)
    for init_from, width, message in (("low/other", 16, "experiment 'low' has no arm 'other'; its arms are net"),
                                      ("low/net", 8, r"block 0 (hidden_0_dense) has weight shapes [(64, 8), (8,)] but "
                                                     "'low/net' has [(64, 16), (16,)]")):
        bad = dlbench("run", target(init_from, width), *run, check=False)
        assert bad.returncode == 2 and f"field `arms.t.init_from`: '{init_from}': {message}" in bad.stderr

    # Three other classes: the hidden layer is loaded, the head (5 classes there, 3 here) re-initialised, and
    # the frozen hidden layer stays the source's by value.
    dlbench("run", target("low/net"), *run)
    src = {r.info.run_id: r for r in _runs(uri, "low")}
    for r in _runs(uri, "high"):
        assert r.data.tags[T.TAG_INIT_SOURCE_RUN] in src
        assert (r.data.params["init_loaded_variables"], r.data.params["init_reinitialized_variables"]) == ("2", "2")
        np.testing.assert_array_equal(_saved(uri, r.info.run_id)[0], _saved(uri, r.data.tags[T.TAG_INIT_SOURCE_RUN])[0])
    # Five other classes (the same number): still a new head, since labels 0..4 mean other digits there.
    dlbench("run", target("low/net", classes="[5, 6, 7, 8, 9]", name="upper"), *run)
    assert {(r.data.params["init_loaded_variables"], r.data.params["init_reinitialized_variables"])
            for r in _runs(uri, "upper")} == {("2", "2")}


@pytest.mark.e2e
def test_the_transfer_experiment_runs_quick_from_its_source(stores):
    source, _ = quick_run("transfer_source", *stores)
    exp, runs = quick_run("transfer", *stores)
    assert exp.dataset.options["classes"] == (5, 6, 7, 8, 9) and source.dataset.options["classes"] == (0, 1, 2, 3, 4)
    assert sorted(runs["tags.dlbench.arm"]) == ["finetuned", "frozen", "scratch"]
    by_arm = {r["tags.dlbench.arm"]: r for _, r in runs.iterrows()}
    assert by_arm["scratch"]["params.init_from"] == "" and by_arm["scratch"]["params.frozen_blocks"] == "0"
    assert by_arm["frozen"]["params.frozen_blocks"] == "2" and by_arm["finetuned"]["params.frozen_blocks"] == "0"
    quick_source = _runs(stores[1], "transfer-source-quick")
    for arm in ("frozen", "finetuned"):
        assert by_arm[arm]["tags.dlbench.init_source_run"] == quick_source[0].info.run_id
        assert by_arm[arm]["tags.dlbench.init_source"] == "transfer-source-quick/net/seed-0"
        assert (by_arm[arm]["params.init_loaded_variables"], by_arm[arm]["params.init_reinitialized_variables"]) \
            == ("4", "2")  # two hidden layers loaded; a new head
