"""preprocessing_fn run through real tf.Transform (Beam) on real prepared rows."""

import csv
import datetime

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from models import features, preprocessing

# As SchemaGen infers it for the canonical CSV: always-present columns are
# dense, sometimes-empty ones arrive as sparse (VarLen) features.
RAW_SPEC = {
    "product": tf.io.FixedLenFeature([1], tf.string),
    "company_response": tf.io.FixedLenFeature([1], tf.string),
    "timely_response": tf.io.FixedLenFeature([1], tf.string),
    "sub_product": tf.io.VarLenFeature(tf.string),
    "issue": tf.io.VarLenFeature(tf.string),
    "sub_issue": tf.io.VarLenFeature(tf.string),
    "state": tf.io.VarLenFeature(tf.string),
    "zip_code": tf.io.VarLenFeature(tf.int64),
    "date_received": tf.io.FixedLenFeature([1], tf.string),
    "date_sent_to_company": tf.io.FixedLenFeature([1], tf.string),
    "consumer_disputed": tf.io.FixedLenFeature([1], tf.int64),
}


def _instance(row):
    out = {}
    for name, spec in RAW_SPEC.items():
        value = row[name]
        if spec.dtype == tf.int64:
            parsed = [int(value)] if value else []
        else:
            parsed = [value.encode()] if value else []
        out[name] = parsed
    return out


@pytest.fixture(scope="module")
def transformed(prepared_span, tmp_path_factory):
    with open(prepared_span, newline="") as f:
        rows = list(csv.DictReader(f))[:600]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft"))):
        (output, _), _ = (
            [_instance(r) for r in rows],
            metadata,
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing.preprocessing_fn)
    return rows, output


def test_outputs_are_the_model_inputs_and_the_label(transformed):
    _, output = transformed
    expected = {features.transformed_name(n) for n in features.MODEL_FEATURE_NAMES}
    assert set(output[0]) == expected | {features.TRANSFORMED_LABEL_KEY}


def test_categorical_indices_stay_within_vocabulary_plus_oov(transformed):
    _, output = transformed
    for feature in features.CATEGORICAL_FEATURES:
        values = np.array([o[features.transformed_name(feature.name)] for o in output])
        assert values.min() >= 0
        assert values.max() < feature.num_indices, feature.name


def test_missing_zip_gets_index_zero_and_present_zips_spread_over_buckets(transformed):
    rows, output = transformed
    zip_feature = features.BUCKETIZED_FEATURES[0]
    indices = np.array([o["zip_code_xf"] for o in output])
    missing = np.array([not r["zip_code"] for r in rows])
    assert missing.any(), "the sample should contain rows without a ZIP code"
    assert (indices[missing] == 0).all()
    present = indices[~missing]
    assert present.min() >= 1 and present.max() <= zip_feature.num_buckets
    # Quantile buckets from train data: every bucket is used.
    assert len(set(present)) == zip_feature.num_buckets


def _days(row, name):
    return datetime.date.fromisoformat(row[name])


def test_days_to_company_and_weekday_follow_the_calendar(transformed):
    # Checked against Python's calendar on real rows, not against the formula.
    rows, output = transformed
    (days_feature,) = [
        f for f in features.DERIVED_FEATURES if isinstance(f, features.DaysBetweenFeature)
    ]
    (weekday,) = [f for f in features.DERIVED_FEATURES if isinstance(f, features.WeekdayFeature)]
    spans = set()
    for row, out in zip(rows, output, strict=True):
        days = (_days(row, days_feature.end) - _days(row, days_feature.start)).days
        bucket = sum(days >= b for b in days_feature.boundaries)
        assert out[features.transformed_name(days_feature.name)] == bucket, row
        assert out[features.transformed_name(weekday.name)] == _days(row, weekday.source).weekday()
        spans.add(bucket)
    assert len(spans) > 3, "real rows spread over several day buckets"


def test_days_since_epoch_agrees_with_the_proleptic_calendar():
    days = ["1970-01-01", "2000-02-29", "2000-03-01", "1999-12-31", "2100-03-01", "1900-02-28"]
    expected = [datetime.date.fromisoformat(d).toordinal() - 719163 for d in days]
    assert preprocessing.days_since_epoch(tf.constant(days)).numpy().tolist() == expected


def test_zip_region_is_one_category_per_three_digit_prefix(transformed):
    rows, output = transformed
    (region,) = [f for f in features.DERIVED_FEATURES if isinstance(f, features.RegionFeature)]
    by_prefix: dict[str, set] = {}
    for row, out in zip(rows, output, strict=True):
        prefix = row["zip_code"][: region.digits]
        by_prefix.setdefault(prefix, set()).add(out[features.transformed_name(region.name)])
    assert all(len(indices) == 1 for indices in by_prefix.values())
    # Fewer regions in the slice than the vocabulary holds: each its own index.
    assert len(by_prefix) <= region.vocab_size
    assert len(set.union(*by_prefix.values())) == len(by_prefix)


def test_the_most_frequent_product_gets_index_zero(transformed):
    rows, output = transformed
    counts = {}
    for r in rows:
        counts[r["product"]] = counts.get(r["product"], 0) + 1
    top = max(counts, key=counts.get)
    assert {o["product_xf"] for r, o in zip(rows, output, strict=True) if r["product"] == top} == {
        0
    }


def test_label_passes_through(transformed):
    rows, output = transformed
    assert [o[features.TRANSFORMED_LABEL_KEY] for o in output] == [
        int(r["consumer_disputed"]) for r in rows
    ]


def test_zip_code_as_text_is_rejected_with_a_clear_message():
    text_zip = tf.SparseTensor([[0, 0]], tf.constant(["770XX"]), [1, 1])
    with pytest.raises(TypeError, match="zip_code arrived as text"):
        preprocessing._bucket_index(features.BUCKETIZED_FEATURES[0], text_zip)
