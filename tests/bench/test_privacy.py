"""The membership-inference attack the privacy table reports: TF Privacy
0.8.12's privacy_tests, on this project's pinned set."""

import numpy as np

from bench import privacy


def _rows(rng, n, confidence):
    """(probabilities, labels) where the model puts `confidence` on the true label."""
    labels = rng.integers(0, 2, n)
    noise = rng.normal(0, 0.05, n)
    p = np.where(labels == 1, confidence + noise, 1 - confidence + noise)
    return np.clip(p, 0.01, 0.99), labels


def test_the_attack_tells_memorized_rows_from_unseen_ones():
    rng = np.random.default_rng(0)
    # Members: the model is sure of their labels; non-members: it is not.
    result = privacy.membership_attack(_rows(rng, 2000, 0.95), _rows(rng, 2000, 0.6))
    assert result["attack_auc"] > 0.9 and result["attack_advantage"] > 0.5, result


def test_the_attack_is_at_chance_when_the_model_treats_both_alike():
    rng = np.random.default_rng(1)
    result = privacy.membership_attack(_rows(rng, 3000, 0.7), _rows(rng, 3000, 0.7))
    assert 0.45 < result["attack_auc"] < 0.56, result
