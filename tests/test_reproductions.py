"""Reproductions of the published ablations at full budget (slow: `make reproduce`, not CI).

Each test runs a shipped experiment into fresh stores, writes its comparison to docs/reproductions/<name>.md and
asserts the direction that our measurements support. The asserted directions were written after measuring; a
direction that did not reproduce is asserted as what we measured and explained in docs/reproductions.md.
"""

from __future__ import annotations

import json
import math

import pytest

from conftest import ROOT, dlbench
from dlbench.spec import load

pytestmark = pytest.mark.slow
OUT = ROOT / "docs" / "reproductions"


def _reproduce(tmp_path, spec: str, *sets: str, workers: int = 1) -> dict:
    """Run a shipped spec (with `--set` overrides, as a user would sweep it), compare it, keep its markdown report.

    `workers` is the `--workers` the measurement quoted in the test was made with: the tuner sees trials finish in
    a different order with two workers, so the same command is what reproduces the same numbers.
    """
    storage, uri = str(tmp_path / "studies"), f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    overrides = [arg for item in sets for arg in ("--set", item)]
    dlbench("run", f"experiments/{spec}", *overrides, "--workers", str(workers), "--storage", storage,
            "--tracking-uri", uri, "--no-progress", timeout=3600)
    target = load(ROOT / "experiments" / spec, sets).name if sets else f"experiments/{spec}"
    report = json.loads(dlbench("compare", target, "--format", "json", "--storage", storage,
                                "--tracking-uri", uri, "--no-log").stdout)
    md = dlbench("compare", target, "--format", "md", "--storage", storage, "--tracking-uri", uri,
                 "--no-log").stdout
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{report['experiment']}.md").write_text(md)
    return report


def _verdicts(report: dict) -> dict[str, str]:
    return {c["arm"]: c["verdict"] for c in report["comparisons"]}


def test_relu_and_tanh_beat_sigmoid_in_a_deep_mlp(tmp_path):
    # Glorot & Bengio 2010: with standard init and plain SGD, deep sigmoid nets train worse than tanh (and ReLU).
    report = _reproduce(tmp_path, "relu_vs_sigmoid.toml")
    assert _verdicts(report) == {"tanh": "better", "relu": "better"}
    for c in report["comparisons"]:
        assert c["p_holm"] < 0.05


def test_greedy_pretraining_rescues_a_deep_sigmoid_mlp_with_few_labels(tmp_path):
    # Erhan et al. 2010: unsupervised layer-wise pretraining beats random init for deep sigmoid nets, most with few
    # labels. Measured (4x128 sigmoid, small uniform init, plain SGD, 200 labeled + 997 unlabeled digits, 8
    # trials, 60 epochs): random init never left chance (0.101 +- 0.002 test accuracy), AE pretraining
    # 0.889 +- 0.013, DAE pretraining 0.877 +- 0.006; both better with Holm p < 0.0001.
    report = _reproduce(tmp_path, "pretraining.toml")
    assert _verdicts(report) == {"ae_pretrained": "better", "dae_pretrained": "better"}
    for c in report["comparisons"]:
        assert c["p_holm"] < 0.05 and c["diff"] > 0.5


def test_pretraining_brings_no_gain_to_a_relu_he_adam_mlp(tmp_path):
    # The modern control: with ReLU units, He init and Adam, random init already reaches 0.930 +- 0.007 on the
    # same 200 labels; AE pretraining 0.930 +- 0.010 and DAE pretraining 0.921 +- 0.009, no significant difference
    # (Holm p 1.0 and 0.22). We assert what we measured: no pretrained arm is better, and none is far off.
    report = _reproduce(tmp_path, "pretraining_modern.toml")
    assert "better" not in _verdicts(report).values()
    for c in report["comparisons"]:
        assert abs(c["diff"]) < 0.03


def test_linear_autoencoder_reaches_pcas_error_for_every_k(tmp_path):
    # Baldi & Hornik 1989. Measured after 100 Adam epochs: +1.0% (k=2), +1.2% (k=8), +1.1% (k=16) above PCA's
    # test reconstruction error, inside the spec's 5% tolerance.
    report = _reproduce(tmp_path, "linear_ae_vs_pca.toml")
    matches = {m["arm"]: m for m in report["reference_matches"]}
    assert sorted(matches) == ["k16", "k2", "k8"]
    assert all(m["within"] for m in matches.values())


def _arm(report: dict, name: str) -> dict:
    return next(a for a in report["arms"] if a["arm"] == name)


def test_a_32_layer_plain_cnn_degrades_and_shortcuts_rescue_it(tmp_path):
    # He et al. 2016: plain-32 trains worse than plain-20; residual nets of both depths train well. Measured (8x8
    # digit images, SGD + momentum, weight decay 1e-4, step schedule, 15 epochs, 5 seeds): plain_32 0.848 +- 0.036
    # test accuracy with training loss still 0.07-0.17; plain_20 0.953 +- 0.012, residual_20 0.973 +- 0.004,
    # residual_32 0.967 +- 0.011, each better than plain_32 (Holm p = 0.0033). Residual-32 did not beat
    # residual-20, so that is not asserted.
    report = _reproduce(tmp_path, "residual_vs_plain.toml", workers=2)
    assert _verdicts(report) == {"plain_20": "better", "residual_20": "better", "residual_32": "better"}


def test_separable_convolutions_cut_cost_about_8x_at_some_accuracy(tmp_path):
    # Howard et al. 2017: 8-9x fewer parameters and multiply-adds for 1.1 points of ImageNet accuracy. Measured
    # (MobileNet x0.5, 6 blocks, 8x8 digit images): 7.7x fewer parameters, 7.5x fewer FLOPs, and 4.3 points lower
    # test accuracy (0.929 +- 0.007 vs 0.972 +- 0.002, Holm p = 0.0055). We assert what we measured: much cheaper,
    # and not more accurate.
    report = _reproduce(tmp_path, "separable_conv.toml")
    sep, std = _arm(report, "separable"), _arm(report, "standard")
    assert std["params_count"] / sep["params_count"] > 6 and std["flops_per_example"] / sep["flops_per_example"] > 6
    assert _verdicts(report)["separable"] != "better" and report["comparisons"][0]["diff"] < 0


def test_on_8x8_digits_the_standard_mobilenets_front_lies_above_the_separable_one(tmp_path):
    # Howard et al. 2017, Fig. 4: the separable front lies above the standard one. Measured (a two-objective search
    # over width and learning rate, 12 trials per arm): standard front 0.987 at 0.30 MFLOPs (x0.125), 0.993 at
    # 4.76M; separable front 0.943 at 0.06M, 0.957 at 0.63M, 0.980 at 2.31M; repeats 0.979 vs 0.949, worse at
    # p = 0.0011. We assert what we measured: the cheapest standard point on the front beats every separable point
    # of no more than 8x its FLOPs, and the separable arm's repeated best is not better.
    from dlbench.plots import pareto_front

    report = _reproduce(tmp_path, "separable_conv_pareto.toml")
    fronts = {}
    for arm in ("standard", "separable"):
        points = _arm(report, arm)["trial_objectives"]
        fronts[arm] = [points[i] for i in pareto_front(points, [True, False])]
    cheapest = min(fronts["standard"], key=lambda p: p[1])
    assert all(acc < cheapest[0] for acc, flops in fronts["separable"] if flops <= 8 * cheapest[1])
    assert _verdicts(report)["separable"] != "better" and report["comparisons"][0]["diff"] < 0


def test_int8_keeps_float_accuracy_and_per_tensor_does_not_hurt_this_mobilenet(tmp_path):
    # Jacob et al. 2018: int8 within about 1% of float; Krishnamoorthi 2018: per-tensor int8 loses much more than
    # per-channel on MobileNet. Measured (8x8 digits, 3 seeds; the arms of one model quantize the same float
    # models): every seed's quantized model within 0.0067 of its float one (cnn 0.974 float, 0.973 int8, 0.972 per
    # tensor; mobilenet 0.892 float, 0.893 int8, 0.890 per tensor); .tflite files 2.6-2.7x smaller for int8,
    # 3.1-3.4x per tensor, 1.8x for float16. We assert what we measured: int8 and float16 within one point of float per seed, per tensor too on
    # MobileNet (the per-tensor claim is not reproduced: folded channel ranges differ at most 5.9x here), and the
    # sizes in order.
    report = _reproduce(tmp_path, "quantization.toml")
    for model in ("cnn", "mobilenet"):
        base = _arm(report, f"{model}_float32")
        for kind in ("float16", "int8", "int8_per_tensor"):
            arm = _arm(report, f"{model}_{kind}")
            assert arm["float_mean"] == pytest.approx(base["mean"], abs=1e-9)  # the same float models
            assert all(abs(arm["values"][s] - base["values"][s]) <= 0.01 for s in base["values"]), (model, kind)
        f16, i8, pt = (_arm(report, f"{model}_{k}")["quantized_bytes"] for k in ("float16", "int8", "int8_per_tensor"))
        assert pt < i8 < base["model_bytes"] / 2.4 and f16 < base["model_bytes"] / 1.7


def test_resize_convolution_decoders_reconstruct_digits_worse_than_transposed_ones(tmp_path):
    # Odena et al. 2016: resize-convolution avoids checkerboard artifacts "without loss in quality". Measured (28x28
    # digits, 7x7x4 code, equal parameters): test MSE transposed 0.0024 +- 0.0003; resize_conv worse in all 5 paired
    # seeds (four at 0.0031-0.0035, one never trained: 0.113), rank p = 0.0079, Welch inconclusive (p = 0.36).
    # We assert what we measured: more error in at least 4 of 5 paired seeds, and not better.
    report = _reproduce(tmp_path, "conv_ae.toml")
    resize, transposed = _arm(report, "resize_conv")["values"], _arm(report, "transposed")["values"]
    assert sum(resize[s] > transposed[s] for s in transposed) >= 4
    assert _verdicts(report)["resize_conv"] != "better"


def test_a_vaes_test_bound_rises_with_its_latent_size_with_diminishing_returns(tmp_path):
    # Kingma & Welling 2014, Fig. 2: the held-out lower bound improves with the latent size, and extra latents do not
    # overfit. Measured (5,000 MNIST digits, 256 hidden units, 30 epochs): test ELBO z2 -166.7 +- 0.7, z5 -138.0,
    # z10 -125.3, z20 -121.6 (each better than z2, Holm p < 0.0001; gains 28.6, 12.7, 3.7 nats).
    report = _reproduce(tmp_path, "vae_latent.toml")
    assert _verdicts(report) == {"z5": "better", "z10": "better", "z20": "better"}
    means = [_arm(report, arm)["mean"] for arm in ("z2", "z5", "z10", "z20")]
    gains = [b - a for a, b in zip(means, means[1:])]
    assert all(g > 0 for g in gains) and gains[0] > gains[1] > gains[2]


def test_the_minimax_gan_loss_covers_the_ring_as_well_as_the_non_saturating_one(tmp_path):
    # Goodfellow et al. 2014 (section 3) expect the minimax generator loss to saturate and train worse. Measured
    # (ring of 8 Gaussians, matched networks, 150 epochs, last epoch): minimax 8 modes in all 5 seeds,
    # non-saturating 8, 8, 8, 6, 2; -1.6 [-4.8, 1.6], p = 0.24: not reproduced (D(G(z)) never fell below 0.35).
    report = _reproduce(tmp_path, "gan_losses.toml")
    assert _verdicts(report)["non_saturating"] != "better"
    assert _arm(report, "minimax")["mean"] >= 7.5


def test_the_minimax_gan_loss_saturates_when_the_discriminator_leads(tmp_path):
    # The same with five discriminator updates per generator update: D(G(z)) falls to 0.01, the minimax generator
    # covers 0 modes in all 5 seeds, the non-saturating one 2.2 +- 0.4 (collapsed onto 2-3 modes), p = 0.0004.
    report = _reproduce(tmp_path, "gan_losses.toml", "fixed.d_steps=5")
    assert _verdicts(report) == {"non_saturating": "better"}
    assert _arm(report, "minimax")["mean"] == 0 < 1 <= _arm(report, "non_saturating")["mean"] < 8


def test_batch_norm_in_a_dcgan_generator_lowers_the_frechet_distance(tmp_path):
    # Radford et al. 2016: batch norm in the generator stabilises training. Measured (8x8 digits, 100 epochs, the
    # judge's test accuracy 0.977, real vs real 0.43): test Frechet distance without 48.4 +- 22.0 (4 of 5 seeds
    # collapsed), with 2.50 +- 0.24, -45.9 [-73.2, -18.6], Holm p = 0.0095.
    report = _reproduce(tmp_path, "dcgan_digits.toml")
    assert _verdicts(report) == {"batch_norm": "better"}
    assert _arm(report, "batch_norm")["mean"] < 5 < 10 < _arm(report, "no_batch_norm")["mean"]


def test_a_beta_vae_trades_bound_and_reconstruction_for_a_narrower_latent_channel(tmp_path):
    # Higgins et al. 2017; Burgess et al. 2018. Measured (5,000 MNIST digits, 10 latents, 30 epochs): test ELBO
    # beta 1 -124.2 +- 0.2, beta 4 -134.2 +- 0.6 (-10.0, p < 0.0001); KL 17.5 -> 8.8, reconstruction 106.7 -> 125.5.
    report = _reproduce(tmp_path, "vae_beta.toml")
    assert _verdicts(report) == {"beta_4": "worse"}


def test_a_cnn_beats_an_mlp_of_the_same_size_on_digit_images(tmp_path):
    # LeCun et al. 1998. Measured (~31k parameters each, 500 training digits as 8x8 images): cnn 0.965 +- 0.006,
    # mlp 0.953 +- 0.006 test accuracy, +0.012 [0.004, 0.020], Holm p = 0.0089.
    report = _reproduce(tmp_path, "cnn_vs_mlp.toml")
    assert _verdicts(report) == {"cnn": "better"}
    assert {a["arm"]: a["params_count"] for a in report["arms"]} == {"mlp": 30_250, "cnn": 31_050}


def test_pooling_kind_makes_no_significant_difference_on_digits(tmp_path):
    # Springenberg et al. 2015 find strided convolutions can replace max pooling without loss; Scherer et al. 2010
    # find max beats average pooling. Measured on 8x8 digit images: max 0.979 +- 0.011, average 0.979 +- 0.002,
    # strided 0.967 +- 0.000; no significant difference (Holm p 1.0 and 0.37). We assert what we measured.
    # Equivalence within one point (TOST, Holm): p 0.24 and 0.62 from the recorded means and SDs: inconclusive.
    report = _reproduce(tmp_path, "pooling.toml")
    assert set(_verdicts(report).values()) == {"inconclusive"}
    for c in report["comparisons"]:
        assert abs(c["diff"]) < 0.03


def test_mnist1d_every_arm_within_two_points_of_the_published_table(tmp_path):
    # Greydanus 2020: logistic 32%, MLP 68%, CNN 94%, GRU 91% test accuracy on MNIST-1D, 4,000 training signals,
    # 6,000 Adam steps. Measured with the same (--workers 2): logistic 0.332 +- 0.005, mlp 0.663 +- 0.009, cnn
    # 0.941 +- 0.005, gru 0.911 +- 0.003; all better than logistic (Holm p < 0.0001).
    report = _reproduce(tmp_path, "architectures_mnist1d.toml", workers=2)
    assert _verdicts(report) == {"mlp": "better", "cnn": "better", "gru": "better"}
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert means["logistic"] < means["mlp"] < means["gru"] < means["cnn"]
    for arm, published in {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94, "gru": 0.91}.items():
        assert abs(means[arm] - published) < 0.02, (arm, means[arm])


# --- the training-technique catalogue ---


def test_large_batches_generalise_worse_at_equal_epochs(tmp_path):
    # Keskar et al. 2017. Measured (2x512 ReLU, Adam, 3,000 MNIST digits, 20 epochs, learning rate tuned per arm):
    # batch 32 0.944 +- 0.005, batch 1024 0.931 +- 0.001, -0.014 [-0.020, -0.007], Holm p = 0.0040.
    report = _reproduce(tmp_path, "batch_size.toml", workers=2)
    assert _verdicts(report) == {"large": "worse"}


def test_dropout_helps_a_wide_relu_mlp_trained_with_momentum(tmp_path):
    # Srivastava et al. 2014: 1.60% -> 1.25% test error on MNIST with dropout, 1.05% with max-norm. Measured
    # (2x1024 ReLU, SGD + momentum 0.95, 3,000 MNIST digits, 60 epochs): none 0.942 +- 0.002, dropout
    # 0.949 +- 0.003 (+0.0070 [0.0027, 0.0113], Holm p = 0.019), dropout + max-norm 0.948 +- 0.005 (p = 0.11),
    # max-norm alone 0.939 +- 0.004 (p = 0.12). We assert what we measured: dropout better, max-norm alone not.
    report = _reproduce(tmp_path, "dropout.toml", workers=2)
    verdicts = _verdicts(report)
    assert verdicts["dropout"] == "better"
    assert verdicts["maxnorm"] != "better"
    assert next(c for c in report["comparisons"] if c["arm"] == "dropout_maxnorm")["diff"] > 0


def test_a_30_layer_relu_mlp_trains_from_he_init_and_not_from_glorot(tmp_path):
    # He et al. 2015, Fig. 3. Measured (30x64 ReLU, SGD + momentum, digits, 20 epochs): glorot 0.100 +- 0.000 (no
    # trial left chance), he 0.887 +- 0.016, +0.787, Holm p < 0.0001.
    report = _reproduce(tmp_path, "init.toml", workers=2)
    assert _verdicts(report) == {"he": "better"}
    assert _arm(report, "glorot")["mean"] < 0.2 < 0.8 < _arm(report, "he")["mean"]


def test_the_classifier_loss_matters_little_once_its_learning_rate_is_tuned(tmp_path):
    # Hui & Belkin 2021. Measured (2x256 ReLU, Adam, digits, 20 epochs): cross-entropy 0.973 +- 0.010, mse
    # 0.969 +- 0.005, hinge 0.970 +- 0.006; no significant difference (Holm p 0.91, 0.91).
    # Equivalence within one point (TOST, Holm): p 0.25 and 0.25 from the recorded means and SDs: inconclusive.
    report = _reproduce(tmp_path, "losses.toml", workers=2)
    assert set(_verdicts(report).values()) == {"inconclusive"}
    for c in report["comparisons"]:
        assert abs(c["diff"]) < 0.02


def test_with_noisy_labels_the_best_validation_epoch_beats_the_last(tmp_path):
    # Zhang et al. 2017; Prechelt 1998. Measured (2x512 ReLU, Adam, digits with 20% of training labels wrong, 80
    # epochs): last epoch 0.917 +- 0.010, best epoch 0.944 +- 0.006, patience 10 0.945 +- 0.007 (stopping after
    # 18-27 epochs); both better than last, Holm p = 0.0026.
    report = _reproduce(tmp_path, "early_stopping.toml", workers=2)
    assert _verdicts(report) == {"best": "better", "patience": "better"}


def test_tuned_optimizers_land_within_a_point_of_each_other(tmp_path):
    # Choi et al. 2019. Measured (2x256 ReLU, digits, 20 epochs, each rate tuned): sgd 0.968, momentum 0.963,
    # nesterov 0.968, rmsprop 0.970, adam 0.977, adamw 0.963; no difference significant after Holm (adam p = 0.056).
    report = _reproduce(tmp_path, "optimizers.toml", workers=2)
    assert "worse" not in _verdicts(report).values()
    for c in report["comparisons"]:
        assert abs(c["diff"]) < 0.03


def test_sigmoid_mlps_stop_learning_at_a_smaller_depth_than_relu_ones(tmp_path):
    # Glorot & Bengio 2010. Measured (width 128, standard uniform init, plain SGD, digits, 20 epochs): sigmoid
    # 0.921 at depth 2 and chance (0.101) at 4, 6 and 10; relu 0.958, 0.797, 0.882 at 2, 4, 6 and chance at 10.
    # The first layer's gradient norm at epoch 0 is 5e-9 of the head's in sigmoid_10.
    report = _reproduce(tmp_path, "depth.toml", workers=2)
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert means["sigmoid_2"] > 0.8 and means["sigmoid_4"] < 0.2 and means["sigmoid_10"] < 0.2
    assert means["relu_6"] > 0.5 and means["relu_2"] > means["sigmoid_2"]
    assert _verdicts(report)["sigmoid_4"] == "worse"


def test_deep_sigmoid_mlps_fail_and_the_other_activations_tie(tmp_path):
    # Glorot et al. 2011; Clevert et al. 2016. Measured (8x128, He init, SGD + momentum, digits, 20 epochs): sigmoid
    # 0.101 (chance); tanh 0.974, relu 0.963, leaky_relu 0.957, elu 0.969, selu 0.961, gelu 0.969, none of them
    # significantly different from relu (Holm p >= 0.63). We assert what we measured.
    report = _reproduce(tmp_path, "activations.toml", workers=2)
    verdicts = _verdicts(report)
    assert verdicts.pop("sigmoid") == "worse"
    assert set(verdicts.values()) == {"inconclusive"}  # TOST within one point: Holm p >= 0.84, 3 seeds


def test_learning_rate_schedules_tie_with_a_constant_rate_on_digits(tmp_path):
    # Loshchilov & Hutter 2017; Goyal et al. 2017. Measured (2-block CNN, 8x8 digits, SGD + momentum, 30 epochs,
    # peak rate tuned): constant 0.977 +- 0.005, step 0.975 +- 0.013, cosine 0.981 +- 0.002, warmup_cosine
    # 0.981 +- 0.002; no significant difference (Holm p 0.68, 0.45, 0.45). We assert what we measured.
    report = _reproduce(tmp_path, "lr_schedules.toml", workers=2)
    assert "worse" not in _verdicts(report).values()
    for c in report["comparisons"]:
        assert abs(c["diff"]) < 0.02


def test_batch_norm_makes_a_sigmoid_mlp_learn_faster_early_in_training(tmp_path):
    # Ioffe & Szegedy 2015, Fig. 1(a). Measured (3x100 sigmoid, plain SGD, batch 60, 3,000 MNIST digits, 5 epochs):
    # none 0.597 +- 0.032, bn 0.876 +- 0.010, +0.278 [0.239, 0.318], Holm p < 0.0001.
    report = _reproduce(tmp_path, "batch_norm.toml", workers=2)
    assert _verdicts(report) == {"bn": "better"}
    assert report["comparisons"][0]["diff"] > 0.1


def test_shift_augmentation_helps_a_cnn_on_1000_real_digits(tmp_path):
    # Simard et al. 2003. Measured (2-block CNN, Adam, 1,000 MNIST digits, 30 epochs): none 0.959 +- 0.003, shift
    # 0.966 +- 0.004, +0.0074 [0.0019, 0.0129], Holm p = 0.015.
    report = _reproduce(tmp_path, "augmentation.toml", workers=2)
    assert _verdicts(report) == {"shift": "better"}


def test_adam_l2_and_adamw_are_not_told_apart_on_500_digits(tmp_path):
    # Loshchilov & Hutter 2019 find AdamW generalises better than Adam + L2. Measured (3x512 ReLU, 500 digits, 40
    # epochs, strengths tuned): adam 0.961 +- 0.006, adam_l2 0.961 +- 0.002, adamw 0.957 +- 0.006; no significant
    # difference (Holm p 0.82, 0.43). We assert what we measured.
    # Within one point (TOST, Holm, from the recorded means and SDs): adam p = 0.022, adamw p = 0.044, so
    # equivalent; adamw's is close to α, and the rerun may call it inconclusive.
    report = _reproduce(tmp_path, "weight_decay.toml", workers=2)
    verdicts = _verdicts(report)
    assert verdicts["adam"] == "equivalent" and verdicts["adamw"] in ("equivalent", "inconclusive")
    for c in report["comparisons"]:
        assert abs(c["diff"]) < 0.02


def test_dropouts_gain_appears_from_about_1000_training_digits(tmp_path):
    # Srivastava et al. 2014, Fig. 9: no gain on the smallest sets, then a gain that shrinks as data grows. Measured
    # (the dropout spec with --set dataset.train_size=N): at 300 digits dropout +0.005 (Holm p = 0.63), at 1,000
    # +0.030 [0.015, 0.044] (p = 0.0050), dropout + max-norm +0.031 (p = 0.0050); at 3,000 (the spec) +0.007.
    small = _reproduce(tmp_path / "300", "dropout.toml", "dataset.train_size=300", workers=2)
    mid = _reproduce(tmp_path / "1000", "dropout.toml", "dataset.train_size=1000", workers=2)
    assert _verdicts(small)["dropout"] == "inconclusive"  # TOST within one point: Holm p = 0.27
    assert _verdicts(mid)["dropout"] == "better" and _verdicts(mid)["dropout_maxnorm"] == "better"
    gain = lambda report: next(c["diff"] for c in report["comparisons"] if c["arm"] == "dropout")  # noqa: E731
    assert gain(mid) > gain(small)


# --- sequence models and attention ---


def test_a_tcn_learns_the_adding_problem_at_length_200_where_an_lstm_stays_at_the_baseline(tmp_path):
    # Bai et al. 2018, Table 1 (T = 600): TCN MSE 5.8e-5, LSTM 0.164. Measured at T = 200 (5,000 sequences, 10
    # epochs, 4 trials, 3 seeds, --workers 2): lstm 0.1658 +- 0.0005 (the 1/6 of always answering 1), tcn
    # 0.0015 +- 0.0002; better, Holm p < 0.0001.
    report = _reproduce(tmp_path, "tcn_vs_lstm.toml", workers=2)
    assert _verdicts(report) == {"tcn": "better"}
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert means["lstm"] > 0.15 and means["tcn"] < 0.01


def test_clipping_keeps_a_simple_rnn_from_diverging_at_high_learning_rates(tmp_path):
    # Pascanu et al. 2013. Measured (simple tanh RNN, momentum SGD, learning rate in [1e-3, 1], 10 trials run to the
    # end, adding problem at length 50): 6 of 10 unclipped trials diverged, 0 of 10 clipped ones; neither arm learned
    # the task in 10 epochs (test MSE 0.167 and 0.165, no significant difference).
    report = _reproduce(tmp_path, "gradient_clipping.toml", workers=2)
    failed = {a["arm"]: a["trials_failed"] for a in report["arms"]}
    assert failed["clip"] == 0 and failed["none"] >= 3


def test_forget_gate_bias_1_and_0_both_learn_the_adding_problem_at_length_100(tmp_path):
    # Jozefowicz et al. 2015 found a forget-gate bias of 1 helps. Measured (LSTM 64, Adam, clipping, 20 epochs, 5
    # seeds): bias_0 0.0007 +- 0.0004, bias_1 0.0004 +- 0.0002 test MSE, no significant difference (p = 0.21):
    # both solve the task (baseline 0.167), escaping the plateau at the same epochs. Asserted as measured.
    report = _reproduce(tmp_path, "forget_bias.toml", workers=2)
    assert _verdicts(report) == {"bias_1": "inconclusive"}  # within 5% of bias_0's MSE: TOST p = 0.88
    assert all(a["mean"] < 0.01 for a in report["arms"])


def test_gru_and_lstm_tie_at_an_equal_parameter_count(tmp_path):
    # Chung et al. 2014: no consistent winner. Measured (MNIST rows, 64-unit LSTM vs 75-unit GRU, 5 seeds): lstm
    # 0.947 +- 0.005, gru 0.946 +- 0.009, p = 0.71.
    report = _reproduce(tmp_path, "gru_vs_lstm.toml", workers=2)
    # Equivalent within one point? TOST p = 0.063 from the recorded means and SDs: just inconclusive at 5 seeds.
    assert _verdicts(report)["gru"] in ("inconclusive", "equivalent")
    assert all(a["mean"] > 0.93 for a in report["arms"])


def test_lstm_and_gru_learn_the_adding_problem_where_a_simple_rnn_stays_at_the_baseline(tmp_path):
    # Hochreiter & Schmidhuber 1997; Le et al. 2015, Fig. 2 (baseline MSE 0.167). Measured at length 50 (64 units,
    # Adam, clipping, 20 epochs, 5 seeds): simple 0.1632 +- 0.0047, lstm 0.0002 +- 0.0001, gru 0.0001 +- 0.0000
    # test MSE; both gated cells better, Holm p < 0.0001.
    report = _reproduce(tmp_path, "lstm_vs_rnn.toml", workers=2)
    assert _verdicts(report) == {"lstm": "better", "gru": "better"}
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert means["simple"] > 0.1 and means["lstm"] < 0.01 and means["gru"] < 0.01


def test_a_transformer_retrieves_a_cued_token_that_an_lstm_cannot(tmp_path):
    # Vaswani et al. 2017; Bahdanau et al. 2015, Fig. 2. Measured (retrieve, length 20, 15 epochs, 3 seeds): lstm
    # 0.235 +- 0.012 (it memorises its training sequences: training accuracy 0.73), transformer 0.978 +- 0.039;
    # better, Holm p = 0.0004.
    report = _reproduce(tmp_path, "attention_vs_recurrence.toml", workers=2)
    assert _verdicts(report) == {"transformer": "better"}
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert means["lstm"] < 0.5 and means["transformer"] > 0.9


def test_a_small_vit_trails_a_cnn_trained_from_scratch_on_3000_digits(tmp_path):
    # Dosovitskiy et al. 2021: without large-scale pre-training ViTs trail CNNs. Measured (mnist5k, 20 epochs, 3
    # seeds): cnn 0.972 +- 0.002, vit 0.914 +- 0.013; worse, Holm p = 0.014.
    report = _reproduce(tmp_path, "vit_vs_cnn.toml", workers=2)
    assert _verdicts(report) == {"vit": "worse"}
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert means["vit"] > 0.85 and means["cnn"] > 0.96


def test_at_length_100_the_simple_rnn_never_leaves_the_baseline(tmp_path):
    # Measured (--set dataset.length=100): simple 0.1712 +- 0.0022, lstm 0.0002 +- 0.0001, gru 0.0001 +- 0.0001.
    report = _reproduce(tmp_path, "lstm_vs_rnn.toml", "dataset.length=100", workers=2)
    assert _verdicts(report) == {"lstm": "better", "gru": "better"}
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert means["simple"] > 0.15 and means["lstm"] < 0.01 and means["gru"] < 0.01


def test_at_length_200_the_gru_solves_it_at_once_and_the_lstm_late(tmp_path):
    # Measured (--set dataset.length=200): simple 0.1655 +- 0.0006, lstm 0.0358 +- 0.0664 (four seeds escape the
    # plateau at epochs 16-18, one never), gru 0.0001; both better, Holm p = 0.012 and < 0.0001.
    report = _reproduce(tmp_path, "lstm_vs_rnn.toml", "dataset.length=200", workers=2)
    assert _verdicts(report) == {"lstm": "better", "gru": "better"}
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert means["simple"] > 0.15 and means["gru"] < 0.01 and means["lstm"] < means["simple"]


def test_at_length_40_the_lstm_falls_to_near_chance_and_the_transformer_still_retrieves(tmp_path):
    # Measured (--set dataset.length=40): lstm 0.163 +- 0.014, transformer 0.911 +- 0.152 (0.998, 1.000 and one
    # seed still learning at 0.736); better, Holm p = 0.013.
    report = _reproduce(tmp_path, "attention_vs_recurrence.toml", "dataset.length=40", workers=2)
    assert _verdicts(report) == {"transformer": "better"}
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert means["lstm"] < 0.3 and means["transformer"] > 0.7


def test_on_copy_memory_the_lstm_stays_memoryless_and_the_tcn_recalls_every_symbol(tmp_path):
    # Bai et al. 2018's copy memory at T = 50. Measured: lstm 0.2974 +- 0.0001 test loss (the memoryless
    # 10 ln 8 / 70 = 0.297), tcn 3.3e-7; better, Holm p < 0.0001.
    report = _reproduce(tmp_path, "tcn_vs_lstm.toml", 'dataset={ name = "copy_memory", delay = 50 }',
                        "name=tcn-vs-lstm-copy", workers=2)
    assert _verdicts(report) == {"tcn": "better"}
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert abs(means["lstm"] - 10 * math.log(8) / 70) < 0.01 and means["tcn"] < 0.01


def test_at_length_80_neither_arm_leaves_chance_within_15_epochs(tmp_path):
    # The claim fails at this budget. Measured (--set dataset.length=80): lstm 0.127 +- 0.008, transformer
    # 0.127 +- 0.004 (chance 0.10), p = 0.90; the Transformer's training accuracy stayed at 0.16-0.17 on every
    # trial and repeat. Asserted as measured.
    report = _reproduce(tmp_path, "attention_vs_recurrence.toml", "dataset.length=80", workers=2)
    assert _verdicts(report)["transformer"] in ("inconclusive", "equivalent")
    assert all(a["mean"] < 0.2 for a in report["arms"])


def test_the_transformer_reverses_sequences_the_lstm_gets_mostly_right(tmp_path):
    # Measured (--set dataset.name=reverse, length 20): lstm 0.911 +- 0.009 per scored position (0.16-0.22 of
    # sequences all right), transformer 1.000; better, Holm p = 0.0031.
    report = _reproduce(tmp_path, "attention_vs_recurrence.toml", "dataset.name=reverse", workers=2)
    assert _verdicts(report) == {"transformer": "better"}
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert means["transformer"] > 0.99 and 0.8 < means["lstm"] < 0.97


# --- your own model: the plugin example ---


def test_the_plugin_residual_mlp_trains_where_the_plain_one_stays_at_chance(tmp_path):
    # Measured (experiments/plugins/residual_mlp.toml, --workers 2): plain 0.101 +- 0.002 (chance), residual
    # 0.963 +- 0.004; better, Holm p < 0.0001.
    report = _reproduce(tmp_path, "plugins/residual_mlp.toml", workers=2)
    assert _verdicts(report) == {"residual": "better"}
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert means["plain"] < 0.2 and means["residual"] > 0.93


# --- transfer learning ---


def test_frozen_transferred_features_fall_far_below_fine_tuned_ones_and_fine_tuning_does_not_beat_scratch(tmp_path):
    # Yosinski et al. 2014: transferred + fine-tuned features generalise at least as well as training from scratch,
    # frozen ones transfer worse. Measured (digits 0-4 -> 5-9, 10 labels per class, 2x128 ReLU MLP, 10 seeds):
    # scratch 0.937 +- 0.027, frozen 0.741 +- 0.010 (worse, Holm p < 0.0001), finetuned 0.916 +- 0.018
    # (-0.021 [-0.043, 0.000], Holm p = 0.053: inconclusive; scratch ahead in 6 of 10 paired seeds). Frozen below
    # fine-tuned in every seed (+0.175 +- 0.022): that half reproduced; fine-tuning >= scratch did not. Asserted as
    # measured. The source network comes from its own spec, run first into the same stores.
    _reproduce(tmp_path, "transfer_source.toml")
    report = _reproduce(tmp_path, "transfer.toml")
    verdicts = _verdicts(report)
    assert verdicts["frozen"] == "worse" and verdicts["finetuned"] != "better"
    means = {a["arm"]: a["mean"] for a in report["arms"]}
    assert means["finetuned"] - means["frozen"] > 0.1
    assert means["finetuned"] < means["scratch"] + 0.01
