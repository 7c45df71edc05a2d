"""Unsupervised pretraining: greedy layer-wise autoencoders, denoising, the few-labels data, linear AE vs PCA."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, dlbench
from dlbench import comparison as compare, data, pretrain, spaces, train
from dlbench.models import autoencoder, mlp

FEW = data.load("digits", {"labels_per_class": 20})
DIGITS = data.load("digits")


def _rows(x: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in x.reshape(len(x), -1)}


def _weights(model, depth: int) -> list[np.ndarray]:
    return [w for hidden in mlp.hidden_layers(model, depth) for w in hidden.dense.get_weights()]


# === Greedy layer-wise pretraining ===


def test_unlabeled_inputs_are_all_training_rows_and_no_validation_or_test_row():
    x = pretrain.unlabeled_inputs(FEW)
    assert x.shape == (1197, 64)  # 200 labeled + 997 unlabeled training rows, labels dropped
    assert _rows(x) == _rows(FEW.train.x) | _rows(FEW.unlabeled.x)
    assert not _rows(x) & _rows(FEW.val.x)
    assert not _rows(x) & _rows(FEW.test.x)


def test_pretraining_copies_each_autoencoders_encoder_into_the_mlp_and_is_seeded():
    hp = mlp.HParams(depth=2, width=16, activation="sigmoid", init="small_uniform", pretrain="dae",
                     pretrain_epochs=2, pretrain_learning_rate=1.0)
    thp = train.TrainHParams(optimizer="sgd", learning_rate=0.1, batch_size=64)
    import keras

    keras.utils.set_random_seed(0)
    model = mlp.build(hp, FEW)
    initial = _weights(model, 2)
    head = model.get_layer("head").get_weights()
    seen = []
    result = pretrain.greedy_layerwise(model, hp, pretrain.unlabeled_inputs(FEW), thp, seed=7,
                                       hook=lambda layer, epoch, logs: seen.append((layer, epoch, sorted(logs))))

    # Every hidden layer now holds exactly its autoencoder's encoder weights, not the random ones.
    for i, hidden in enumerate(mlp.hidden_layers(model, 2)):
        kernel, bias = hidden.dense.get_weights()
        np.testing.assert_array_equal(kernel, result.weights[i][0])
        np.testing.assert_array_equal(bias, result.weights[i][1])
        assert np.abs(kernel - initial[2 * i]).max() > 1e-3
    assert kernel.shape == (16, 16) and result.weights[0][0].shape == (64, 16)
    # The softmax head is left to supervised training.
    for a, b in zip(model.get_layer("head").get_weights(), head):
        np.testing.assert_array_equal(a, b)
    assert seen == [(0, 0, ["loss"]), (0, 1, ["loss"]), (1, 0, ["loss"]), (1, 1, ["loss"])]
    assert result.rows == 1197 and [len(v) for v in result.losses.values()] == [2, 2]

    # The same seed gives the same pretrained weights; another seed does not.
    keras.utils.set_random_seed(0)
    again = mlp.build(hp, FEW)
    pretrain.greedy_layerwise(again, hp, pretrain.unlabeled_inputs(FEW), thp, seed=7)
    for a, b in zip(_weights(again, 2), _weights(model, 2)):
        np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(0)
    other = mlp.build(hp, FEW)
    pretrain.greedy_layerwise(other, hp, pretrain.unlabeled_inputs(FEW), thp, seed=8)
    assert not np.array_equal(_weights(other, 2)[0], _weights(model, 2)[0])


def test_fine_tuning_starts_from_the_pretrained_weights():
    # train.fit builds (and so pretrains) after seeding, then trains the same model object: with a learning rate
    # of 1e-12 the weights after one epoch are still the autoencoders' encoder weights.
    hp = mlp.HParams(depth=2, width=16, activation="sigmoid", init="small_uniform", pretrain="ae", pretrain_epochs=1)
    thp = train.TrainHParams(optimizer="sgd", learning_rate=1e-12, batch_size=64)
    built = {}

    def build():
        model = mlp.build(hp, FEW)
        built["random"] = _weights(model, 2)
        built["pretrained"] = pretrain.greedy_layerwise(model, hp, pretrain.unlabeled_inputs(FEW), thp, seed=0)
        built["model"] = model
        return model

    train.fit(build, FEW, thp, epochs=1, seed=0, monitor="val_accuracy")
    for i, hidden in enumerate(mlp.hidden_layers(built["model"], 2)):
        kernel, bias = hidden.dense.get_weights()
        np.testing.assert_allclose(kernel, built["pretrained"].weights[i][0], atol=1e-7)
        np.testing.assert_allclose(bias, built["pretrained"].weights[i][1], atol=1e-7)
        assert np.abs(kernel - built["random"][2 * i]).max() > 1e-3


def test_layer_autoencoders_follow_the_layer_and_its_input_range():
    hp = mlp.HParams(depth=3, width=32, activation="relu", init="he_uniform", pretrain="dae", pretrain_noise=0.3)
    bounded = pretrain.layer_autoencoder(hp, bounded=True)  # pixels in [0, 1]
    assert (bounded.code, bounded.activation, bounded.init, bounded.tied) == (32, "relu", "he_uniform", True)
    assert (bounded.output_activation, bounded.loss) == ("sigmoid", "binary_crossentropy")
    assert (bounded.noise, bounded.noise_level) == ("masking", 0.3)
    free = pretrain.layer_autoencoder(mlp.HParams(depth=3, pretrain="ae"), bounded=False)  # ReLU outputs
    assert (free.output_activation, free.loss, free.noise) == ("linear", "mse", "none")


def test_pretraining_needs_hidden_layers_without_batch_norm():
    with pytest.raises(ValueError, match="needs hidden layers to pretrain; got depth = 0"):
        mlp.HParams(depth=0, pretrain="ae")
    with pytest.raises(ValueError, match="cannot be combined with batch_norm"):
        mlp.HParams(batch_norm=True, pretrain="dae")
    # The autoencoders' leaky_relu has the default slope; the MLP's layers must have the same one.
    with pytest.raises(ValueError, match="default slope 0.01; got negative_slope = 0.2"):
        mlp.HParams(activation="leaky_relu", negative_slope=0.2, pretrain="ae")
    assert mlp.HParams(activation="relu", negative_slope=0.2, pretrain="ae").pretrain == "ae"  # unused slope
    assert not pretrain.applies(mlp.HParams()) and pretrain.applies(mlp.HParams(pretrain="ae"))
    assert not pretrain.applies(autoencoder.HParams())


# === Denoising ===


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
@pytest.mark.parametrize("noise, level", [("masking", 0.5), ("gaussian", 0.2)])
def test_denoising_autoencoder_corrupts_inputs_only_never_targets(noise, level):
    # An autoencoder set to the identity (frozen): on clean inputs it reconstructs perfectly, so the validation
    # error is 0. While training, its inputs are corrupted but its targets are not, so the training error is the
    # corruption's own: E[mask * x^2] = level * E[x^2] for masking, level^2 for Gaussian noise. Were the targets
    # corrupted as well, the training error would be 0 too.
    hp = autoencoder.HParams(depth=1, code=64, activation="linear", output_activation="linear", noise=noise,
                             noise_level=level)

    def build():
        model = autoencoder.build(hp, DIGITS)
        for name in ("code", "reconstruction"):
            model.get_layer(name).set_weights([np.eye(64, dtype="float32"), np.zeros(64, dtype="float32")])
            model.get_layer(name).trainable = False
        return model

    r = train.fit(build, DIGITS, train.TrainHParams(optimizer="sgd", learning_rate=0.1, batch_size=128), epochs=1,
                  seed=0, monitor="val_reconstruction_error", task="reconstruction", loss="mse")
    expected = level * float(np.mean(DIGITS.train.x ** 2)) if noise == "masking" else level ** 2
    assert r.history["reconstruction_error"][0] == pytest.approx(expected, rel=0.1)
    assert r.history["val_reconstruction_error"][0] == pytest.approx(0.0, abs=1e-10)


def test_masking_noise_zeroes_a_fraction_while_training_and_nothing_otherwise():
    import keras

    from dlbench.models import layers

    x = np.ones((200, 64), dtype="float32")
    mask = layers.corruption("masking", 0.3, name="corrupt", seed=1)
    out = keras.ops.convert_to_numpy(mask(x, training=True))
    assert set(np.unique(out)) == {0.0, 1.0}  # masked to zero, kept inputs not rescaled (unlike Dropout)
    assert (out == 0).mean() == pytest.approx(0.3, abs=0.02)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mask(x, training=False)), x)


# === Linear autoencoder vs PCA ===

TOLERANCE = 0.05  # relative; measured: within 1.6% (k=8) and 3.0% (k=2) after these 30 epochs, ~1% after 100


@pytest.mark.parametrize("k", [2, 8])
def test_linear_autoencoder_reaches_pcas_reconstruction_error(k):
    hp = autoencoder.HParams(depth=1, code=k, activation="linear", output_activation="linear", loss="mse")
    r = train.fit(lambda: autoencoder.build(hp, DIGITS), DIGITS,
                  train.TrainHParams(optimizer="adam", learning_rate=0.01, batch_size=32), epochs=30, seed=0,
                  monitor="val_reconstruction_error", evaluate_test=True, task="reconstruction")
    ours = r.test["test_reconstruction_error"]
    pca = pretrain.pca_reconstruction_error(DIGITS.train.x, DIGITS.test.x, k)
    assert abs(ours - pca) / pca < TOLERANCE, (ours, pca)
    assert set(r.test) == {"test_loss", "test_reconstruction_error"}


def test_linear_ae_vs_pca_reference_values_are_pcas_errors():
    # The spec's reference numbers are PCA's test reconstruction errors on the same split, recomputed here.
    exp = spaces.load(ROOT / "experiments" / "linear_ae_vs_pca.toml")
    assert exp.reference.results_metric == compare.compared_metric(exp) == "test_reconstruction_error"
    for arm in exp.arms:
        k = arm.params["code"]
        assert exp.reference.results[arm.name] == pytest.approx(
            pretrain.pca_reconstruction_error(DIGITS.train.x, DIGITS.test.x, k), rel=1e-3)
    # More components, less error (a sanity check of the baseline itself).
    errors = [pretrain.pca_reconstruction_error(DIGITS.train.x, DIGITS.test.x, k) for k in (2, 8, 16, 64)]
    assert errors == sorted(errors, reverse=True) and errors[-1] == pytest.approx(0.0, abs=1e-10)


def test_compare_sets_each_arm_beside_its_reference_value_within_the_tolerance():
    exp = spaces.load(ROOT / "experiments" / "linear_ae_vs_pca.toml")
    arms = [compare.ArmResult(a, 3, mean, 0.0, mean, mean, {}, mean, 0, None, {}, 3, 0, 0, 1.0, [])
            for a, mean in (("k2", 0.0540), ("k8", 0.0300), ("k16", 0.0116))]
    matches = {m.arm: m for m in compare._matches(exp, arms, "test_reconstruction_error")}
    assert matches["k2"].within is True and matches["k2"].rel_diff == pytest.approx(0.0540 / 0.05321 - 1)
    assert matches["k8"].within is False  # 22% above PCA
    assert matches["k16"].within is True
    assert compare._matches(exp, arms, "test_loss") == []  # a reference in other units is not set beside ours


# === End to end ===


@pytest.mark.e2e
def test_pretraining_experiment_runs_end_to_end_quick(stores):
    # The shipped spec, smoke-sized (2 epochs; one trial and one seed per arm to keep it under a minute): the
    # pretrained runs carry their per-layer pretraining losses and time in the same MLflow run.
    storage, uri = stores
    out = dlbench("run", "experiments/pretraining.toml", "--quick", "--trials", "1", "--seeds", "1",
                  "--storage", storage, "--tracking-uri", uri, "--no-progress")
    assert "random_init (baseline)" in out.stdout and "dae_pretrained" in out.stdout
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("pretraining-quick")
    runs = [r for r in client.search_runs([exp.experiment_id], max_results=100)
            if r.data.tags["dlbench.role"] in ("trial", "repeat")]
    assert len(runs) == 6
    for r in runs:
        arm, metrics = r.data.tags["dlbench.arm"], r.data.metrics
        assert r.data.tags["dlbench.state"] == "COMPLETE"
        if arm == "random_init":
            assert not [k for k in metrics if k.startswith("pretrain")]
            continue
        assert r.data.params["pretrain"] == {"ae_pretrained": "ae", "dae_pretrained": "dae"}[arm]
        assert metrics["pretrain_rows"] == 1197 and metrics["pretrain_seconds"] > 0
        for layer in range(4):  # depth 4, 10 pretraining epochs per layer
            hist = client.get_metric_history(r.info.run_id, f"pretrain/layer_{layer}/loss")
            assert sorted(m.step for m in hist) == list(range(10))
        assert ("pretrain_noise" in r.data.params) == (arm == "dae_pretrained")
        assert [m.step for m in client.get_metric_history(r.info.run_id, "val_accuracy")] == [0, 1]


@pytest.mark.e2e
def test_autoencoder_spec_runs_on_its_own_and_compares_reconstruction_error(stores):
    storage, uri = stores
    dlbench("run", "experiments/linear_ae_vs_pca.toml", "--quick", "--trials", "1", "--arms", "k2,k8",
            "--storage", storage, "--tracking-uri", uri, "--no-progress")
    report = json.loads(dlbench("compare", "linear-ae-vs-pca-quick", "--format", "json", "--storage", storage,
                                "--tracking-uri", uri, "--no-log").stdout)
    assert report["metric"] == "test_reconstruction_error" and report["higher_is_better"] is False
    assert [m["arm"] for m in report["reference_matches"]] == ["k2", "k8"]
    for arm in report["arms"]:
        assert arm["n"] == 2 and 0 < arm["mean"] < 0.2
