"""Plots: real PNGs of the expected size, robust to empty arms and single seeds, one colour per arm."""

from __future__ import annotations

import matplotlib.image as mpimg
import pytest

from dlbench import plots

PNG = b"\x89PNG\r\n\x1a\n"


def _check_png(path, min_bytes=5_000):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > min_bytes
    assert mpimg.imread(path).shape[:2] == (500, 800)  # 8x5 inches at 100 dpi


def test_learning_curves_distribution_and_expected_best(tmp_path):
    curves = {"sigmoid": [[0.1, 0.2, 0.3], [0.1, 0.25, 0.35]], "relu": [[0.5, 0.8, 0.9], [0.6, 0.85, 0.92, 0.93]]}
    _check_png(plots.learning_curves(curves, "val_accuracy", tmp_path / "lc.png", baseline="sigmoid"))
    _check_png(plots.distribution({"sigmoid": [0.1, 0.12, 0.11], "relu": [0.9, 0.93]}, "test_accuracy",
                                  tmp_path / "d.png", baseline="sigmoid"))
    _check_png(plots.expected_max_curves({"sigmoid": [0.1, 0.15], "relu": [0.8, 0.9, 0.95]}, "val_accuracy",
                                         tmp_path / "e.png", baseline="sigmoid"))


def test_single_seed_and_empty_arms_still_plot(tmp_path):
    _check_png(plots.learning_curves({"a": [[0.1, 0.2]], "b": []}, "val_loss", tmp_path / "lc.png"), 2_000)
    _check_png(plots.distribution({"a": [0.3], "b": []}, "test_loss", tmp_path / "d.png"), 2_000)
    _check_png(plots.expected_max_curves({"a": [], "b": []}, "val_loss", tmp_path / "e.png"), 2_000)


def test_an_arm_keeps_its_colour_across_plots():
    c = plots.arm_colors(["none", "dropout", "bn"])
    assert c == plots.arm_colors(["none", "dropout", "bn"])
    assert len(set(c.values())) == 3
    assert plots.arm_colors([f"a{i}" for i in range(12)])["a10"] == c["none"]  # the palette cycles
