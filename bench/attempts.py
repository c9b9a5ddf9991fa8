"""Which features make the model better than its baselines? Every attempt,
kept (issue 34: "show the attempts in a table").

Feature sets grow one derived feature at a time (models/features.py's
DERIVED_FEATURES order), from the book's features to the pipeline's. For
each set, the pipeline's Keras model (its architecture and training: steps,
batch size, learning rate, seed, early stopping on the validation split)
and both baselines are fit on the same train rows
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
    train: quality.Featured,
    validation: quality.Featured,
    test_sets: dict[str, quality.Featured],
    settings,
) -> list[dict]:
    """One row per feature set and test set: each model's AUC and the Keras
    model's paired AUC difference from the better baseline (95% interval)."""
    rows = []
    for label, kept in feature_sets():
        print(f"[bench] attempt: {label}", flush=True)
        keras_probabilities, _ = bare_keras.fit_indices(
            _held(train.features, kept),
            train.labels,
            (_held(validation.features, kept), validation.labels),
            [_held(test.features, kept) for test in test_sets.values()],
            settings,
        )
        fitted = quality.baselines(train.features, train.labels, kept)
        for (test_name, test), keras in zip(test_sets.items(), keras_probabilities, strict=True):
            labels = test.labels
            scored = {name: predict(test.features) for name, predict in fitted.items()}
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
