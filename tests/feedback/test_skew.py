"""Training/serving skew from logged requests (tests/feedback/traffic.py)
against the shared run's training statistics, with the schema's comparators.

"Really differ" is measured here without TFDV: the L-infinity distance
between the share of each value among the logged complaints and among the
examples of the training split, which is what the schema's comparator
computes (tensorflow_metadata schema.proto: "the largest absolute difference
between the two distributions")."""

import collections
import datetime
import glob
import os

import pytest
import tensorflow as tf
from ml_metadata import metadata_store

from data import schema as curated_schema
from feedback import prediction_log, skew
from models import features
from reporting import pages, report, summary
from settings import metadata
from tests.conftest import SPAN_2015

pytestmark = pytest.mark.e2e

# Every day the traffic can have been logged on (a session may cross midnight).
WINDOW = (datetime.date(2026, 1, 1), datetime.date.today() + datetime.timedelta(days=2))
# Distances this close to a threshold are left out of the comparison: the
# two computations may round differently there.
BORDER = 0.002


def _shares(values) -> dict:
    counts = collections.Counter(v for v in values if v not in (None, ""))
    total = sum(counts.values())
    return {v: n / total for v, n in counts.items()}


def _l_infinity(a: dict, b: dict) -> float:
    return max(abs(a.get(v, 0.0) - b.get(v, 0.0)) for v in set(a) | set(b))


def _training_examples(config) -> list[dict]:
    """The train split of the newest span's examples, read from ExampleGen's files."""
    store = metadata_store.MetadataStore(metadata.connection_config(config))
    examples = [
        a
        for a in store.get_artifacts_by_type("Examples")
        if a.custom_properties["span"].int_value == SPAN_2015
    ]
    newest = max(examples, key=lambda a: a.id)
    files = glob.glob(os.path.join(newest.uri, "Split-train", "*"))
    rows = []
    for raw in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        rows.append(prediction_log._example_values(tf.train.Example.FromString(raw)))
    return rows


def _logged(prefix: str) -> list[dict]:
    return [
        c
        for r in prediction_log.read_logs(prefix, *WINDOW)
        for c in prediction_log.logged_complaints(r)
    ]


@pytest.fixture(scope="module")
def checks(feedback_traffic):
    return {
        name: skew.check(getattr(feedback_traffic, name).config, *WINDOW)
        for name in ("earlier", "training")
    }


def test_traffic_from_another_period_is_reported_on_the_features_that_differ(
    feedback_traffic, checks
):
    result, _ = checks["earlier"]
    assert result.training_statistics["span"] == SPAN_2015
    assert result.logged_complaints == len(_logged(feedback_traffic.earlier.prefix))
    training = _training_examples(feedback_traffic.config)
    logged = _logged(feedback_traffic.earlier.prefix)
    measured = {m["feature"]: m for m in result.measurements}
    assert sorted(measured) == sorted(features.FEATURE_NAMES)
    decided, differ = set(), set()
    for name, threshold in curated_schema.LINF_THRESHOLDS.items():
        distance = _l_infinity(
            _shares(c.get(name) for c in logged), _shares(t.get(name) for t in training)
        )
        assert measured[name]["distance"] == pytest.approx(distance, abs=1e-3), name
        if abs(distance - threshold) > BORDER:
            decided.add(name)
            if distance > threshold:
                differ.add(name)
    assert len(decided) >= 5
    reported = {m["feature"] for m in result.beyond}
    assert reported & decided == differ
    # The difference that is really there: the 2014 traffic holds open
    # complaints ("In progress"), which training never saw.
    assert "company_response" in differ


def test_traffic_from_the_training_span_is_not_reported(checks):
    result, _ = checks["training"]
    assert result.logged_complaints > 2000
    assert result.beyond == [], result.render()
    assert not result.serving_anomalies


def test_the_newest_check_is_in_the_summary_and_the_report(feedback_traffic, checks):
    config = feedback_traffic.earlier.config
    run = summary.run_summary(config)
    assert run.serving_skew is not None and run.serving_skew.beyond
    text = run.render()
    assert "  skew        SKEW: company_response" in text
    page = pages.render(report.build(config))
    assert "Training/serving skew" in page and "SKEWED" in page
    result, kept = checks["earlier"]
    assert os.path.exists(os.path.join(kept, skew.STATISTICS_FILE))
    assert skew.latest(config) == result


def test_skew_blocks_only_when_configured(feedback_traffic, capsys):
    config = feedback_traffic.earlier.config
    flags = [
        "--prediction-log-prefix",
        config.prediction_log_prefix,
        "--pipeline-root",
        config.pipeline_root,
        "--metadata-path",
        config.metadata_path,
    ]
    assert skew.main(flags) == 0
    assert "serving skew: " in capsys.readouterr().out
    assert skew.main([*flags, "--skew-blocks"]) == skew.EXIT_SKEW_BLOCKS
    assert "blocks (--skew-blocks)" in capsys.readouterr().out
    empty = ["--prediction-log-prefix", str(feedback_traffic.root / "none" / "p"), *flags[2:]]
    assert skew.main(empty) == 1
    assert "no logged requests" in capsys.readouterr().err
