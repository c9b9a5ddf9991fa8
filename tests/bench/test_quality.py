"""The bootstrap intervals the quality table reports."""

import numpy as np

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
