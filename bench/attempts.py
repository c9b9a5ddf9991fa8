"""Which features make the model better than its baselines? Every attempt,
kept (issue 34: "show the attempts in a table").

Feature sets grow one derived feature at a time (models/features.py's
DERIVED_FEATURES order), from the book's features to the pipeline's. For
each set, the pipeline's Keras model (its architecture, steps, batch size,
learning rate and seed) and both baselines are fit on the same train rows
and the same model-feature columns, computed by the pipeline's own Transform
graph; a feature outside the set is held at index 0 for the Keras model (a
constant input carries no information, the architecture stays) and left out
of the baselines. Scored on every test set; nothing is chosen by a test
set's result (the sets are fixed before: every candidate the data has).
"""

from __future__ import annotations

import numpy as np

from bench import bare_keras, quality


def feature_sets() -> list[tuple[str, list[str]]]:
    """(what the set adds, its model features by `_xf` name), smallest first;
    the last is the pipeline's."""
    from models import features

    names = [features.transformed_name(f.name) for f in features.MODEL_FEATURES]
    base = [
        features.transformed_name(f.name)
        for f in features.CATEGORICAL_FEATURES + features.BUCKETIZED_FEATURES
    ]
    sets = [("the book's features (the raw inputs, encoded)", base)]
    for derived in features.DERIVED_FEATURES:
        sets.append((f"+ {derived.name}", [*sets[-1][1], features.transformed_name(derived.name)]))
    assert sets[-1][1] == names, "every model feature is in the last set"
    return sets


def _held(x: dict[str, np.ndarray], kept: list[str]) -> dict[str, np.ndarray]:
    return {n: v if n in kept else np.zeros_like(v) for n, v in x.items()}


def attempts(
    x_train: dict[str, np.ndarray],
    train_labels: np.ndarray,
    test_sets: dict[str, tuple[dict[str, np.ndarray], np.ndarray]],
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> list[dict]:
    """One row per feature set and test set: each model's AUC and the Keras
    model's paired AUC difference from the better baseline (95% interval)."""
    rows = []
    for label, kept in feature_sets():
        print(f"[bench] attempt: {label}", flush=True)
        keras_probabilities, _ = bare_keras.fit_indices(
            _held(x_train, kept),
            train_labels,
            [_held(x, kept) for x, _ in test_sets.values()],
            steps,
            batch_size,
            learning_rate,
            seed,
        )
        fitted = quality.baselines(x_train, train_labels, kept)
        for (test_name, (x_test, labels)), keras in zip(
            test_sets.items(), keras_probabilities, strict=True
        ):
            scored = {name: predict(x_test) for name, predict in fitted.items()}
            aucs = {name: quality.auc(labels, p) for name, p in scored.items()}
            best = max(aucs, key=aucs.__getitem__)
            interval, difference = quality.auc_interval(labels, keras, scored[best])
            rows.append(
                {
                    "features": label,
                    "test_set": test_name,
                    "rows": len(labels),
                    "keras_auc": quality.auc(labels, keras),
                    "keras_interval": interval,
                    "baseline_aucs": aucs,
                    "best_baseline": best,
                    "keras_minus_best": difference,
                }
            )
    return rows
