"""The same Keras model, same steps, same rows, without TFX: the benchmark's
hand-rolled-script reference. Preprocessing mirrors models/preprocessing.py in
numpy (top-k vocabularies plus one OOV index, ZIP quantile buckets with 0 for
missing, the derived features), learned on the train split.

    python -m bench.bare_keras --examples <CsvExampleGen examples uri> --steps 2000
Prints one JSON line: wall seconds, fit seconds, test AUC.
"""

from __future__ import annotations

import argparse
import json
import time

STARTED = time.monotonic()

import numpy as np  # noqa: E402


def _vocabulary_indices(train: np.ndarray, values: np.ndarray, top_k: int) -> np.ndarray:
    unique, counts = np.unique(train, return_counts=True)
    vocabulary = unique[np.argsort(-counts, kind="stable")][:top_k]
    index = {v: i for i, v in enumerate(vocabulary)}
    return np.array([index.get(v, top_k) for v in values], dtype=np.int64)


def _bucket_indices(train: np.ndarray, values: np.ndarray, buckets: int) -> np.ndarray:
    present = train[train >= 0]
    if not present.size:  # a withheld feature (bench/minimization.py): missing everywhere
        return np.zeros(len(values), dtype=np.int64)
    boundaries = np.quantile(present, np.linspace(0, 1, buckets + 1)[1:-1])
    return np.where(values >= 0, np.digitize(values, boundaries) + 1, 0).astype(np.int64)


def _days(dates: np.ndarray) -> np.ndarray:
    return dates.astype("datetime64[D]").astype(np.int64)


def _derived_values(feature, columns) -> np.ndarray:
    """A derived feature's raw values (categories or indices), as Transform
    computes them."""
    from models import features

    if isinstance(feature, features.RegionFeature):
        zips = columns[feature.source]
        regions = [z[: feature.digits] for z in np.char.zfill(zips.astype(str), 5)]
        return np.where(zips >= 0, regions, "")
    if isinstance(feature, features.CrossFeature):
        first, second = (columns[name].astype(str) for name in feature.sources)
        return np.char.add(np.char.add(first, " x "), second)
    if isinstance(feature, features.DaysBetweenFeature):
        days = _days(columns[feature.end]) - _days(columns[feature.start])
        return np.searchsorted(np.array(feature.boundaries), days, side="right")
    if isinstance(feature, features.WeekdayFeature):
        return (_days(columns[feature.source]) + 3) % 7  # 1970-01-01: a Thursday
    raise TypeError(f"no computation for {type(feature).__name__} {feature.name}")


def transform(train_columns, columns):
    from models import features

    out = {}
    for f in features.CATEGORICAL_FEATURES:
        out[features.transformed_name(f.name)] = _vocabulary_indices(
            train_columns[f.name], columns[f.name], f.vocab_size
        )
    for f in features.BUCKETIZED_FEATURES:
        out[features.transformed_name(f.name)] = _bucket_indices(
            train_columns[f.name], columns[f.name], f.num_buckets
        )
    for derived in features.DERIVED_FEATURES:
        values = _derived_values(derived, columns)
        if isinstance(derived, features.RegionFeature | features.CrossFeature):
            values = _vocabulary_indices(
                _derived_values(derived, train_columns), values, derived.vocab_size
            )
        out[features.transformed_name(derived.name)] = values.astype(np.int64)
    return out


def fit_and_predict(train_columns, train_labels, validation, test_columns, settings):
    """Trains the pipeline's Keras model on the train columns, stopping on
    `validation` ((columns, labels)) as the Trainer does; returns its
    probabilities on the test columns and what `fit` did."""
    validation_columns, validation_labels = validation
    x_train = transform(train_columns, train_columns)
    x_validation = transform(train_columns, validation_columns)
    x_test = transform(train_columns, test_columns)
    probabilities, trained = fit_indices(
        x_train, train_labels, (x_validation, validation_labels), [x_test], settings
    )
    return probabilities[0], trained


def fit_indices(x_train, train_labels, validation, x_tests, settings):
    """Trains the pipeline's Keras model on model-feature indices ({`_xf`
    name: array}) with the pipeline's `settings` (a GraphSettings: steps,
    batch size, learning rate, seed, validation interval and patience),
    stopping on `validation` ((indices, labels)); returns its probabilities
    on each of `x_tests` and what `fit` did (models.model.fit)."""
    import tensorflow as tf

    from models import model as pipeline_model

    tf.keras.utils.set_random_seed(settings.seed)
    dataset = (
        tf.data.Dataset.from_tensor_slices((x_train, train_labels.astype(np.float32)))
        .shuffle(len(train_labels), seed=settings.seed)
        .repeat()
        .batch(settings.batch_size)
    )
    x_validation, validation_labels = validation
    keras_model = pipeline_model.build_keras_model(settings.learning_rate)
    trained = pipeline_model.fit(
        keras_model,
        dataset,
        (x_validation, validation_labels.astype(np.float32)),
        settings.train_steps,
        settings.validate_every_steps,
        settings.early_stopping_patience,
    )
    return [
        keras_model.predict(x_test, batch_size=1024, verbose=0).ravel() for x_test in x_tests
    ], trained


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bare_keras",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--examples", required=True, help="CsvExampleGen examples artifact uri")
    from settings.configs import PipelineConfig

    defaults = PipelineConfig()  # the pipeline's own settings, stated once
    parser.add_argument("--steps", type=int, default=defaults.train_steps)
    args = parser.parse_args(argv)

    import dataclasses

    from sklearn.metrics import roc_auc_score

    from bench import examples
    from pipeline import splits

    train_columns, train_labels, _ = examples.read_split(args.examples, splits.TRAIN)
    validation_columns, validation_labels, _ = examples.read_split(args.examples, splits.VALIDATION)
    test_columns, test_labels, _ = examples.read_split(args.examples, splits.TEST)
    probabilities, trained = fit_and_predict(
        train_columns,
        train_labels,
        (validation_columns, validation_labels),
        test_columns,
        dataclasses.replace(defaults, train_steps=args.steps),
    )
    print(
        json.dumps(
            {
                "wall_seconds": time.monotonic() - STARTED,
                **trained,
                "test_auc": float(roc_auc_score(test_labels, probabilities)),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
