"""The same Keras model, same steps, same rows, without TFX: the benchmark's
hand-rolled-script reference. Preprocessing mirrors models/preprocessing.py in
numpy (top-k vocabularies plus one OOV index, ZIP quantile buckets with 0 for
missing), learned on the train split.

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
    return out


def fit_and_predict(
    train_columns, train_labels, test_columns, steps, batch_size, learning_rate, seed
):
    """Trains the pipeline's Keras model on the train columns; returns its
    probabilities on the test columns and the seconds `fit` took."""
    import tensorflow as tf

    from models import model as pipeline_model

    x_train = transform(train_columns, train_columns)
    x_test = transform(train_columns, test_columns)
    tf.keras.utils.set_random_seed(seed)
    dataset = (
        tf.data.Dataset.from_tensor_slices((x_train, train_labels.astype(np.float32)))
        .shuffle(len(train_labels), seed=seed)
        .repeat()
        .batch(batch_size)
    )
    keras_model = pipeline_model.build_keras_model(learning_rate)
    fit_started = time.monotonic()
    keras_model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    fit_seconds = time.monotonic() - fit_started
    return keras_model.predict(x_test, batch_size=1024, verbose=0).ravel(), fit_seconds


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
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)

    from sklearn.metrics import roc_auc_score

    from bench import examples

    train_columns, train_labels, _ = examples.read_split(args.examples, "train")
    test_columns, test_labels, _ = examples.read_split(args.examples, "test")
    probabilities, fit_seconds = fit_and_predict(
        train_columns,
        train_labels,
        test_columns,
        args.steps,
        args.batch_size,
        args.learning_rate,
        args.seed,
    )
    print(
        json.dumps(
            {
                "wall_seconds": time.monotonic() - STARTED,
                "fit_seconds": fit_seconds,
                "test_auc": float(roc_auc_score(test_labels, probabilities)),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
