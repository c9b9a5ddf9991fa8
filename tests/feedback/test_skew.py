"""Training/serving skew from logged requests (tests/feedback/traffic.py)
against the shared run's training statistics, with the schema's comparators.

"Really differ" is measured here without TFDV: the L-infinity distance
between the share of each value among the logged complaints and among the
examples of the training split, which is what the schema's comparator
computes (tensorflow_metadata schema.proto: "the largest absolute difference
between the two distributions")."""

import collections
import dataclasses
import datetime
import glob
import os
import shutil

import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from data import prepare
from data import schema as curated_schema
from feedback import prediction_log, skew
from models import features
from pipeline import node_ids
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
        and f"/{node_ids.EXAMPLE_GEN}/" in a.uri  # not the open complaints' examples
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
    assert result.training_statistics["version"] == feedback_traffic.version
    assert result.training_statistics["spans"] == [SPAN_2015]  # the shared run's window
    assert result.logged_complaints == len(_logged(feedback_traffic.earlier.prefix))
    training = _training_examples(feedback_traffic.config)
    # Compared: what was asked at the prediction moment, once the company
    # responded; the complaints asked while still in progress are counted apart.
    asked = _logged(feedback_traffic.earlier.prefix)
    logged = [c for c in asked if c["company_response"] not in prepare.OPEN_RESPONSES]
    assert result.asked_before_response == len(asked) - len(logged) > 0
    assert f"{len(asked) - len(logged):,} of {len(asked):,} logged complaints were asked" in (
        result.render()
    )
    measured = {m["feature"]: m for m in result.measurements}
    # Every raw input but the dates (a date has no skew comparator: every span
    # brings new days).
    assert sorted(measured) == sorted(
        n for n in features.RAW_INPUT_NAMES if n not in features.DATE_INPUT_NAMES
    )
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
    # Two days of complaints from another year: most features differ.
    assert {"product", "issue"} <= differ


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


def test_a_later_run_s_statistics_do_not_replace_what_the_model_trained_on(
    feedback_traffic, checks, tmp_path
):
    """A newer StatisticsGen output (a later run's, here of a span the gate
    might refuse) is not what the served model saw: the comparison stays
    with the answering version's training window."""
    config = dataclasses.replace(
        feedback_traffic.earlier.config,
        metadata_path=str(tmp_path / "metadata.sqlite"),
        pipeline_root=str(tmp_path / "pipeline_root"),
    )
    shutil.copy(feedback_traffic.earlier.config.metadata_path, config.metadata_path)
    store = metadata_store.MetadataStore(metadata.connection_config(config))
    [statistics_type] = [t for t in store.get_artifact_types() if t.name == "ExampleStatistics"]
    later = metadata_store_pb2.Artifact(
        type_id=statistics_type.id,
        uri=str(tmp_path / "later"),
        state=metadata_store_pb2.Artifact.LIVE,
    )
    context = store.get_context_by_type_and_name("pipeline", config.pipeline_name)
    [later.id] = store.put_artifacts([later])
    store.put_attributions_and_associations(
        [metadata_store_pb2.Attribution(artifact_id=later.id, context_id=context.id)], []
    )

    result, _ = skew.check(config, *WINDOW)

    expected, _ = checks["earlier"]
    assert result.training_statistics["spans"] == expected.training_statistics["spans"]
    assert result.measurements == expected.measurements


def test_logs_answered_by_a_version_this_store_never_pushed_are_refused(feedback_traffic, tmp_path):
    config = dataclasses.replace(
        feedback_traffic.earlier.config,
        metadata_path=str(tmp_path / "metadata.sqlite"),
        pipeline_root=str(tmp_path / "pipeline_root"),
    )
    store = metadata_store.MetadataStore(metadata.connection_config(config))
    store.put_contexts(
        [
            metadata_store_pb2.Context(
                type_id=store.put_context_type(metadata_store_pb2.ContextType(name="pipeline")),
                name=config.pipeline_name,
            )
        ]
    )
    with pytest.raises(
        skew.SkewError,
        match=rf"model version {feedback_traffic.version} was not pushed by pipeline "
        r".*its training data is unknown here",
    ):
        skew.check(config, *WINDOW)
