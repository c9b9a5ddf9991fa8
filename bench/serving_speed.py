"""Latency and throughput of the pushed model's signature, in-process, next to
its two parts: the same Keras model on pre-transformed tensors, and parsing
plus the Transform graph alone. Each is called as a concrete function, as TF
Serving calls a signature, so the comparison measures the work, not Python's
argument handling (an earlier baseline traced a tf.function per call and was
slower than the whole signature at batch 1)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from models import features, signature_names

BATCH_SIZES = (1, 32, 256)
SIGNATURE = f"{signature_names.DEFAULT_SIGNATURE} (tf.Example in)"
MODEL_ONLY = "model only (transformed tensors in)"
TRANSFORM_ONLY = "parse + Transform only (tf.Example in)"


ROUNDS = 5


def _time(call: Callable[[], object], seconds: float, minimum_calls: int = 4) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(latencies) < minimum_calls:
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    return latencies


def _time_alternating(
    cases: Mapping[str, Callable[[], object]], seconds_per_case: float
) -> dict[str, list[float]]:
    """Latencies of each case, measured in rounds that alternate between the
    cases, so a slow phase of the machine (another process, a GC) hits all of
    them alike instead of deciding the ratio (seen: batch 256 once 0.77x, once 0.58x)."""
    for call in cases.values():
        for _ in range(3):  # warm-up: tracing, first-call allocations
            call()
    latencies: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, call in cases.items():
            latencies[name] += _time(call, seconds_per_case / ROUNDS)
    return latencies


def serving_speed(
    model_dir: str,
    transform_dir: str,
    serialized: Sequence[bytes],
    seconds_per_case: float = 10.0,
    batch_sizes=BATCH_SIZES,
) -> list[dict]:
    import tensorflow as tf
    import tensorflow_transform as tft

    from models import signatures

    raw_spec = signatures.raw_feature_spec(tft.TFTransformOutput(transform_dir))
    loaded = tf.saved_model.load(model_dir)
    keras_model = tf.keras.models.load_model(model_dir)
    default = loaded.signatures[signature_names.DEFAULT_SIGNATURE]
    model_inputs_spec = {
        features.transformed_name(f.name): tf.TensorSpec([None], tf.int64)
        for f in features.MODEL_FEATURES
    }
    model_only = tf.function(
        lambda inputs: keras_model(inputs, training=False)
    ).get_concrete_function(model_inputs_spec)
    transform_only = tf.function(
        lambda examples: loaded.tft_layer(tf.io.parse_example(examples, raw_spec))
    ).get_concrete_function(tf.TensorSpec([None], tf.string))
    rows = []
    for batch_size in batch_sizes:
        batch = tf.constant([serialized[i % len(serialized)] for i in range(batch_size)])
        transformed = transform_only(batch)
        model_inputs = {name: transformed[name] for name in model_inputs_spec}
        cases = {
            SIGNATURE: lambda batch=batch: default(examples=batch),
            MODEL_ONLY: lambda model_inputs=model_inputs: model_only(model_inputs),
            TRANSFORM_ONLY: lambda batch=batch: transform_only(batch),
        }
        for name, measured in _time_alternating(cases, seconds_per_case).items():
            latencies = np.array(measured)
            rows.append(
                {
                    "case": name,
                    "batch_size": batch_size,
                    "p50_ms": 1000 * np.percentile(latencies, 50),
                    "p99_ms": 1000 * np.percentile(latencies, 99),
                    "mean_ms": 1000 * latencies.mean(),
                    "examples_per_s": batch_size / latencies.mean(),
                }
            )
    return rows
