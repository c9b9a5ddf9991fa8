"""The bootstrap intervals the quality table reports."""

import math

import numpy as np
import pytest

from bench import quality


def test_a_model_compared_with_itself_differs_by_exactly_zero():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    scores = rng.random(500)
    (low, high), difference = quality.auc_interval(labels, scores, scores, resamples=200)
    assert low < 0.5 < high  # random scores: AUC around 0.5
    assert difference == (0.0, 0.0)


def test_a_clearly_better_model_has_a_difference_interval_above_zero():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 2000)
    informative = labels + rng.normal(0, 1.0, 2000)
    noise = rng.random(2000)
    _, (low, high) = quality.auc_interval(labels, informative, noise, resamples=200)
    assert 0 < low < high


def test_the_wilson_interval_matches_its_textbook_values():
    # 20 of 100: 0.1333 .. 0.2888 (Newcombe 1998, "Two-sided confidence
    # intervals for the single proportion", method 3).
    low, high = quality.wilson(20, 100)
    assert low == pytest.approx(0.1333, abs=1e-4)
    assert high == pytest.approx(0.2888, abs=1e-4)
    assert all(math.isnan(v) for v in quality.wilson(0, 0))


def test_calibration_tells_a_calibrated_model_from_an_overconfident_one():
    rng = np.random.default_rng(3)
    probabilities = rng.uniform(0.05, 0.6, 20000)
    labels = (rng.random(20000) < probabilities).astype(int)  # calibrated by construction
    calibrated = quality.calibration(labels, probabilities)
    assert len(calibrated["bins"]) == quality.CALIBRATION_BINS
    assert sum(b["rows"] for b in calibrated["bins"]) == 20000
    assert calibrated["expected_calibration_error"] < 0.015
    for b in calibrated["bins"]:
        low, high = b["interval"]
        assert low - 0.01 < b["predicted"] < high + 0.01
    overconfident = quality.calibration(labels, np.clip(probabilities * 1.6, 0, 1))
    assert overconfident["expected_calibration_error"] > 0.1
