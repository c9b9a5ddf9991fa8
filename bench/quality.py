"""Model quality on the pipeline's held-out test split (and on other test sets,
such as a span from other months), next to baselines trained on the same train
split (scikit-learn)."""

from __future__ import annotations

import math

import numpy as np

from bench import examples
from models import signature_names

BOOTSTRAP_RESAMPLES = 1000
CALIBRATION_BINS = 10
Z_95 = 1.959964


def _metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return {
        "auc": roc_auc_score(labels, p),
        "pr_auc": average_precision_score(labels, p),
        "log_loss": log_loss(labels, p),
    }


def auc_interval(
    labels: np.ndarray,
    probabilities: np.ndarray,
    reference: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
):
    """95% bootstrap intervals of AUC and of AUC minus `reference`'s AUC (paired:
    both scored on the same resampled rows), so a difference can be read against
    the noise of a few thousand test rows."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    aucs, differences = [], []
    for _ in range(resamples):
        rows = rng.integers(0, len(labels), len(labels))
        if labels[rows].min() == labels[rows].max():
            continue  # one class only: AUC undefined
        auc = roc_auc_score(labels[rows], probabilities[rows])
        aucs.append(auc)
        differences.append(auc - roc_auc_score(labels[rows], reference[rows]))
    return tuple(np.percentile(aucs, [2.5, 97.5])), tuple(np.percentile(differences, [2.5, 97.5]))


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (nan, nan) for no trials."""
    if trials == 0:
        return (math.nan, math.nan)
    p = successes / trials
    shrink = 1 + Z_95**2 / trials
    centre = (p + Z_95**2 / (2 * trials)) / shrink
    half = Z_95 * math.sqrt(p * (1 - p) / trials + Z_95**2 / (4 * trials**2)) / shrink
    return (centre - half, centre + half)


def calibration(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS
) -> dict:
    """Does a probability mean what it says? The test rows in `bins`
    equal-count bins of predicted probability: each bin's rows, mean predicted
    probability, observed rate and its 95% interval; and the expected
    calibration error (the row-weighted mean gap between the two)."""
    order = np.argsort(probabilities, kind="stable")
    table: list[dict] = []
    gap = 0.0
    for rows in np.array_split(order, bins):
        if not len(rows):
            continue
        positives = int(labels[rows].sum())
        predicted = float(probabilities[rows].mean())
        observed = positives / len(rows)
        gap += len(rows) * abs(predicted - observed) / len(labels)
        table.append(
            {
                "rows": len(rows),
                "predicted": predicted,
                "observed": observed,
                "interval": wilson(positives, len(rows)),
            }
        )
    return {"bins": table, "expected_calibration_error": gap}


def _tabular(columns) -> np.ndarray:
    # ZIP as its three-digit region (a category), -1 when missing.
    zips = columns["zip_code"]
    region = np.where(zips >= 0, zips // 100, -1).astype(str)
    return np.column_stack([columns[n] for n in examples.CATEGORICAL] + [region])


def quality(
    train: examples.Split, test_sets: dict[str, examples.Split], model_dir: str
) -> dict[str, list[dict]]:
    """Metrics of the pipeline model and each baseline on every test set,
    baselines fit on `train`: {test set name: one row per model}."""
    import tensorflow as tf
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    train_columns, train_labels, _ = train
    x_train = _tabular(train_columns)
    loaded = tf.saved_model.load(model_dir)
    one_hot = OneHotEncoder(handle_unknown="ignore").fit(x_train)
    logistic = LogisticRegression(max_iter=2000).fit(one_hot.transform(x_train), train_labels)
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan).fit(x_train)
    # The ZIP region (last column, ~430 values) exceeds the trees' 255-category
    # limit: it enters as an ordinal number instead.
    boosted = HistGradientBoostingClassifier(
        categorical_features=list(range(len(examples.CATEGORICAL))), random_state=0
    ).fit(ordinal.transform(x_train), train_labels)

    results: dict[str, list[dict]] = {}
    for test_name, (test_columns, test_labels, serialized) in test_sets.items():
        x_test = _tabular(test_columns)
        pipeline_probabilities = np.concatenate(
            [
                loaded.signatures[signature_names.DEFAULT_SIGNATURE](
                    examples=tf.constant(serialized[i : i + 1024])
                )[signature_names.PREDICTION_KEY]
                .numpy()
                .ravel()
                for i in range(0, len(serialized), 1024)
            ]
        )
        rows = [
            (f"pipeline model ({signature_names.DEFAULT_SIGNATURE})", pipeline_probabilities),
            ("majority class (train base rate)", np.full(len(test_labels), train_labels.mean())),
            (
                "logistic regression, one-hot",
                logistic.predict_proba(one_hot.transform(x_test))[:, 1],
            ),
            ("gradient-boosted trees", boosted.predict_proba(ordinal.transform(x_test))[:, 1]),
        ]
        results[test_name] = []
        for name, p in rows:
            interval, difference = auc_interval(test_labels, p, pipeline_probabilities)
            results[test_name].append(
                {
                    "model": name,
                    "test_rows": len(test_labels),
                    **_metrics(test_labels, p),
                    "auc_interval": interval,
                    "auc_minus_pipeline": difference,
                    "calibration": calibration(test_labels, p),
                }
            )
    return results
