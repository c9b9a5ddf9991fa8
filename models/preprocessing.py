"""tf.Transform preprocessing, driven entirely by `models.features`.

Transform references this function by path (`models.preprocessing.preprocessing_fn`)
instead of a module file, so TFX imports it from the installed project rather
than building a wheel at run time. Its graph is saved with the model, so
serving applies exactly the same vocabularies and bucket boundaries.
"""

from __future__ import annotations

from typing import TypeAlias

import tensorflow as tf
import tensorflow_transform as tft

from models import features

Tensor: TypeAlias = tf.Tensor | tf.SparseTensor


def fill_in_missing(x: Tensor, default) -> tf.Tensor:
    """Returns a dense rank-1 tensor with `default` where a value is missing.

    CsvExampleGen writes an empty cell as a feature with an empty value list, so
    an optional feature (a VarLen feature in the schema) arrives as a
    SparseTensor of shape [batch, 1] with no entry for that row; a required one
    (fixed shape in the schema, models/features.py) arrives dense.
    """
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default)
    return tf.reshape(x, [-1])


def _presence(x: Tensor) -> tf.Tensor:
    """1.0 where a value was given, 0.0 where the cell was empty."""
    if isinstance(x, tf.SparseTensor):
        return fill_in_missing(
            tf.SparseTensor(x.indices, tf.ones_like(x.values, tf.float32), x.dense_shape), 0.0
        )
    return tf.ones_like(tf.reshape(x, [-1]), tf.float32)


def _vocabulary_index(feature: features.CategoricalFeature, x: Tensor) -> tf.Tensor:
    # An empty string stands for "not given", a value the model may learn from
    # (e.g. no sub-issue), so it competes for the top-k like any other value.
    values = fill_in_missing(x, "")
    return tft.compute_and_apply_vocabulary(
        values,
        top_k=feature.vocab_size,
        num_oov_buckets=features.OOV_BUCKETS,
        vocab_filename=feature.name,
    )


def _bucket_index(feature: features.BucketizedFeature, x: Tensor) -> tf.Tensor:
    if x.dtype == tf.string:
        raise TypeError(
            f"{feature.name} arrived as text; data.prepare writes it as digits. "
            "Was ExampleGen pointed at unprepared CSV files?"
        )
    present = _presence(x)
    values = tf.cast(fill_in_missing(x, 0), tf.float32)
    # Missing values get zero weight, so they do not pull the quantile
    # boundaries, and the reserved index 0 rather than a real bucket.
    buckets = tft.bucketize(values, feature.num_buckets, weights=present)
    return tf.where(present > 0, buckets + 1, tf.zeros_like(buckets))


def days_since_epoch(dates: tf.Tensor) -> tf.Tensor:
    """Days from 1970-01-01 of ISO `YYYY-MM-DD` strings (the proleptic
    Gregorian calendar's day count, as Python's date.toordinal() - 719163)."""
    year = tf.strings.to_number(tf.strings.substr(dates, 0, 4), tf.int64)
    month = tf.strings.to_number(tf.strings.substr(dates, 5, 2), tf.int64)
    day = tf.strings.to_number(tf.strings.substr(dates, 8, 2), tf.int64)
    # Counting years from March puts the leap day last: a year's day number
    # is then a fixed function of month and day.
    year = year - tf.cast(month <= 2, tf.int64)
    era = tf.math.floordiv(year, 400)
    year_of_era = year - era * 400
    months_from_march = month + tf.where(
        month > 2, tf.constant(-3, tf.int64), tf.constant(9, tf.int64)
    )
    day_of_year = (153 * months_from_march + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _date(inputs: dict[str, Tensor], name: str) -> tf.Tensor:
    return days_since_epoch(fill_in_missing(inputs[name], ""))


def _derived_index(feature: features.DerivedFeature, inputs: dict[str, Tensor]) -> tf.Tensor:
    if isinstance(feature, features.RegionFeature):
        zips = tf.strings.as_string(fill_in_missing(inputs[feature.source], 0), width=5, fill="0")
        present = _presence(inputs[feature.source]) > 0
        # The empty region stands for a missing ZIP, like an empty category.
        regions = tf.where(present, tf.strings.substr(zips, 0, feature.digits), "")
        return tft.compute_and_apply_vocabulary(
            regions,
            top_k=feature.vocab_size,
            num_oov_buckets=features.OOV_BUCKETS,
            vocab_filename=feature.name,
        )
    if isinstance(feature, features.CrossFeature):
        first, second = (fill_in_missing(inputs[name], "") for name in feature.sources)
        return tft.compute_and_apply_vocabulary(
            tf.strings.join([first, second], separator=" x "),
            top_k=feature.vocab_size,
            num_oov_buckets=features.OOV_BUCKETS,
            vocab_filename=feature.name,
        )
    if isinstance(feature, features.DaysBetweenFeature):
        days = _date(inputs, feature.end) - _date(inputs, feature.start)
        boundaries = tf.constant(feature.boundaries, tf.int64)
        return tf.searchsorted(boundaries, days, side="right", out_type=tf.int64)
    if isinstance(feature, features.WeekdayFeature):
        # 1970-01-01 was a Thursday (3 counting from Monday 0).
        return tf.math.floormod(_date(inputs, feature.source) + 3, 7)
    raise TypeError(f"no computation for {type(feature).__name__} {feature.name}")


def preprocessing_fn(inputs: dict[str, Tensor]) -> dict[str, tf.Tensor]:
    """Maps raw canonical columns to the model's integer inputs and the label."""
    outputs = {}
    for feature in features.CATEGORICAL_FEATURES:
        outputs[features.transformed_name(feature.name)] = _vocabulary_index(
            feature, inputs[feature.name]
        )
    for bucketized in features.BUCKETIZED_FEATURES:
        outputs[features.transformed_name(bucketized.name)] = _bucket_index(
            bucketized, inputs[bucketized.name]
        )
    for derived in features.DERIVED_FEATURES:
        outputs[features.transformed_name(derived.name)] = _derived_index(derived, inputs)
    outputs[features.TRANSFORMED_LABEL_KEY] = tf.cast(
        fill_in_missing(inputs[features.LABEL_KEY], 0), tf.int64
    )
    return outputs
