"""Model quality on the pipeline's held-out test split (and on other test sets,
such as outcomes that became final later), next to baselines trained on the
same train split and the same model features (scikit-learn)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from bench import examples
from models import signature_names

BOOTSTRAP_RESAMPLES = 1000
CALIBRATION_BINS = 10
Z_95 = 1.959964
BATCH = 1024  # examples per call of the saved model


def auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, probabilities))


def metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, log_loss

    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return {
        "auc": auc(labels, p),
        "pr_auc": float(average_precision_score(labels, p)),
        "log_loss": float(log_loss(labels, p)),
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


@dataclasses.dataclass(frozen=True)
class Featured:
    """A split's labels, serialized raw examples and model features ({`_xf`
    name: indices}), the features computed once by the pipeline's own
    Transform graph (saved with the model): what the pipeline model reads,
    given to every other model too."""

    labels: np.ndarray
    serialized: list[bytes]
    features: dict[str, np.ndarray]


def featured(loaded, transform_dir: str, split: examples.Split) -> Featured:
    """`split` with its model features, computed by `loaded`'s `tft_layer`
    from the raw inputs as the serving signatures parse them."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from models import features, signatures

    _, labels, serialized = split
    spec = signatures.raw_feature_spec(tft.TFTransformOutput(transform_dir))
    names = [features.transformed_name(n) for n in features.MODEL_FEATURE_NAMES]
    batches = [
        loaded.tft_layer(tf.io.parse_example(tf.constant(serialized[i : i + BATCH]), spec))
        for i in range(0, len(serialized), BATCH)
    ]
    return Featured(
        labels,
        serialized,
        {n: np.concatenate([b[n].numpy().ravel() for b in batches]) for n in names},
    )


def pipeline_probabilities(loaded, serialized: list[bytes]) -> np.ndarray:
    """The pipeline model's answers through its default serving signature."""
    import tensorflow as tf

    serve = loaded.signatures[signature_names.DEFAULT_SIGNATURE]
    return np.concatenate(
        [
            serve(examples=tf.constant(serialized[i : i + BATCH]))[signature_names.PREDICTION_KEY]
            .numpy()
            .ravel()
            for i in range(0, len(serialized), BATCH)
        ]
    )


LOGISTIC = "logistic regression, one-hot"
BOOSTED = "gradient-boosted trees"
# HistGradientBoostingClassifier takes a category only below its 255 bins.
MAX_TREE_CATEGORIES = 255


def baselines(x_train: dict[str, np.ndarray], labels: np.ndarray, names: list[str]):
    """Logistic regression (every feature one-hot) and gradient-boosted trees
    (every feature a category, one with more indices than the trees take as
    an ordinal number), fit on the `names` columns of `x_train`: {model name:
    a function of feature columns to probabilities}."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    from models import features

    sizes = {features.transformed_name(f.name): f.num_indices for f in features.MODEL_FEATURES}

    def matrix(x):
        return np.column_stack([x[n] for n in names])

    train = matrix(x_train)
    one_hot = OneHotEncoder(handle_unknown="ignore").fit(train)
    logistic = LogisticRegression(max_iter=3000).fit(one_hot.transform(train), labels)
    boosted = HistGradientBoostingClassifier(
        categorical_features=[sizes[n] <= MAX_TREE_CATEGORIES for n in names], random_state=0
    ).fit(train, labels)
    return {
        LOGISTIC: lambda x: logistic.predict_proba(one_hot.transform(matrix(x)))[:, 1],
        BOOSTED: lambda x: boosted.predict_proba(matrix(x))[:, 1],
    }


def quality(loaded, train: Featured, test_sets: dict[str, Featured]) -> dict[str, list[dict]]:
    """Metrics of the pipeline model (`loaded`) and each baseline on every
    test set, baselines fit on `train`'s model features (the same inputs the
    pipeline model has): {test set name: one row per model}."""
    from models import features

    fitted = baselines(
        train.features,
        train.labels,
        [features.transformed_name(n) for n in features.MODEL_FEATURE_NAMES],
    )
    results: dict[str, list[dict]] = {}
    for test_name, test in test_sets.items():
        pipeline = pipeline_probabilities(loaded, test.serialized)
        rows = [
            (f"pipeline model ({signature_names.DEFAULT_SIGNATURE})", pipeline),
            ("majority class (train base rate)", np.full(len(test.labels), train.labels.mean())),
            *((name, predict(test.features)) for name, predict in fitted.items()),
        ]
        results[test_name] = []
        for name, p in rows:
            interval, difference = auc_interval(test.labels, p, pipeline)
            results[test_name].append(
                {
                    "model": name,
                    "test_rows": len(test.labels),
                    **metrics(test.labels, p),
                    "auc_interval": interval,
                    "auc_minus_pipeline": difference,
                    "calibration": calibration(test.labels, p),
                }
            )
    return results
