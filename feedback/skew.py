"""Training/serving skew: what serving was asked against what the model trained on.

    python -m feedback.skew                   # the last 7 days of logged requests
    python -m feedback.skew --since 2026-11-01 --until 2026-11-30

Reads the requests serving logged (feedback/logging_proxy.py, TF Serving's
PredictionLog records) in a window of days, computes their statistics with
TFDV over the model's features, and compares them with the statistics of what
the answering model trained on: the version that answered most of the logged
requests (each log names it), its push, Trainer and Transform found in ML
Metadata, and the train split of every span of its training window (not the
newest run's statistics: a refused span's or a later model's say nothing about
the served one), using the curated schema's skew comparators (L-infinity for
categorical features, Jensen-Shannon for the ZIP code; data/schema.py). It
also checks the logged requests against the schema's rules for those features
(values never seen, missing required values). Only complaints asked at the
prediction moment are compared: those asked while the company's response was
still in progress are counted apart (data/README.md, "The prediction moment").

Skew is a fact about traffic, which arrives on its own schedule, not about a
pipeline run: this is a command to run next to the logs (a cron job or an
Airflow task), not a component. Each check is kept under
`<pipeline_root>/serving_skew/<UTC time>/` (skew.json, the logged examples and
their statistics); the run summary and the run report show the newest one.
Exit status: 0 checked (skew is reported), 4 skew beyond a threshold with
`--skew-blocks` (as `--drift-blocks` stops a run), 1 nothing to compare
(no logs in the window, no pipeline run), 2 bad input.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import os
import sys
from collections.abc import Sequence

from components import artifact_properties as props
from data import prepare
from feedback import prediction_log
from models import features
from pipeline import node_ids
from settings.configs import PipelineConfig

SKEW_DIR = "serving_skew"
RESULT_FILE = "skew.json"
EXAMPLES_FILE = "serving_examples.tfrecord"
STATISTICS_FILE = "serving_statistics.pb"
TRAINING_STATISTICS_FILE = "training_statistics.pb"
EXIT_SKEW_BLOCKS = 4


class SkewError(RuntimeError):
    """Nothing to compare: the message says what is missing."""


@dataclasses.dataclass
class SkewResult:
    checked_at: str
    window: list[str]
    logged_requests: int
    logged_complaints: int
    # The answering model's training window: statistics uri, version, model
    # artifact id, spans, requests answered per version.
    training_statistics: dict
    measurements: list[dict]  # feature, comparator, distance, threshold, beyond
    serving_anomalies: dict[str, str]  # feature: what the schema check found
    blocks: bool
    # Logged complaints asked before the company responded (data/prepare.py's
    # OPEN_RESPONSES): not the moment the model is trained for, so counted
    # here and not compared (data/README.md, "The prediction moment").
    asked_before_response: int = 0

    @property
    def beyond(self) -> list[dict]:
        return [m for m in self.measurements if m["beyond"]]

    def describe(self) -> str:
        """What was compared with what, in one line."""
        trained = self.training_statistics
        others = sorted(set(trained.get("answered", {})) - {str(trained.get("version"))})
        return (
            f"{self.logged_complaints - self.asked_before_response:,} logged complaints "
            f"({self.logged_requests:,} requests, "
            f"{self.window[0]} .. {self.window[1]}) vs the training data of version "
            f"{trained.get('version')} (train split of span(s) "
            f"{', '.join(map(str, trained.get('spans') or [trained.get('span')]))})"
            + (f"; version(s) {', '.join(others)} answered the rest" if others else "")
            + f" (checked {self.checked_at})"
        )

    def verdict(self) -> str:
        if not self.beyond:
            return "no feature beyond its skew threshold"
        found = "; ".join(
            f"{m['feature']} {m['distance']:.4f} > {m['threshold']:g} ({m['comparator']})"
            for m in self.beyond
        )
        return f"SKEW: {found}" + (" -- blocks (--skew-blocks)" if self.blocks else "")

    def render(self) -> str:
        lines = [f"{self.describe()}: {self.verdict()}"]
        if self.asked_before_response:
            lines.append(
                f"{self.asked_before_response:,} of {self.logged_complaints:,} logged complaints "
                "were asked before the company responded (still in progress): not compared; "
                "the model is trained to be asked once the response is known"
            )
        if self.serving_anomalies:
            lines.append(
                "schema anomalies in the logged requests: "
                + "; ".join(f"{k}: {v}" for k, v in self.serving_anomalies.items())
            )
        return "\n".join(lines)


@dataclasses.dataclass
class TrainingWindow:
    """What a served model version trained on, found in ML Metadata."""

    version: int
    model_id: int
    spans: list[int]
    train_files: list[str]  # the train split of each span's examples


def training_window(config: PipelineConfig, version: int, connection_config=None) -> TrainingWindow:
    """The examples the model pushed as `version` was trained on: the push
    record -> the Pusher's model -> the Trainer that wrote it -> its Transform
    graph -> the window Transform read (one Examples artifact per span).

    By lineage, not by "the newest": another run's statistics (a refused
    span's, a later run's) say nothing about what this model saw."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    from settings import metadata

    store = metadata_store.MetadataStore(connection_config or metadata.connection_config(config))
    context = store.get_context_by_type_and_name("pipeline", config.pipeline_name)
    if context is None:
        raise SkewError(
            f"no run of pipeline {config.pipeline_name!r} in ML Metadata "
            f"({metadata.describe(config)}): run the pipeline first"
        )

    def written_by(artifact_ids: list[int], node_id: str) -> list[int]:
        """The executions of a node that wrote the artifacts (a resolver's
        execution records what it resolved as its output too)."""
        node_context = node_ids.node_context_name(config.pipeline_name, node_id)
        events = store.get_events_by_artifact_ids(artifact_ids)
        return sorted(
            {
                e.execution_id
                for e in events
                if e.type == pb.Event.OUTPUT
                and any(
                    c.name == node_context for c in store.get_contexts_by_execution(e.execution_id)
                )
            }
        )

    def inputs(execution_ids: list[int], key: str) -> list[int]:
        return [
            e.artifact_id
            for e in store.get_events_by_execution_ids(execution_ids)
            if e.type == pb.Event.INPUT and e.path.steps and e.path.steps[0].key == key
        ]

    artifact_types = {t.id: t.name for t in store.get_artifact_types()}
    pushes = [
        a
        for a in store.get_artifacts_by_context(context.id)
        if artifact_types.get(a.type_id) == "PushedModel"
        and a.custom_properties[props.PUSHED].int_value == 1
        and a.custom_properties[props.PUSHED_VERSION].string_value == str(version)
    ]
    if not pushes:
        raise SkewError(
            f"model version {version} was not pushed by pipeline {config.pipeline_name!r} in "
            f"ML Metadata ({metadata.describe(config)}): its training data is unknown here"
        )
    pushers = written_by([p.id for p in pushes], node_ids.PUSHER)
    models = sorted(set(inputs(pushers, "model")))
    trainers = written_by(models, node_ids.TRAINER)
    transforms = written_by(inputs(trainers, "transform_graph"), node_ids.TRANSFORM)
    window = store.get_artifacts_by_id(sorted(set(inputs(transforms, "examples"))))
    if not models or not window:
        raise SkewError(
            f"model version {version}: ML Metadata has its push but not the examples it "
            "was trained on (lineage incomplete)"
        )
    import tensorflow as tf

    spans = sorted({a.custom_properties[props.SPAN].int_value for a in window})
    files = sorted(f for a in window for f in tf.io.gfile.glob(f"{a.uri}/Split-train/*"))
    if not files:
        raise SkewError(
            f"model version {version} trained on span(s) {', '.join(map(str, spans))}, whose "
            f"train split is gone from {', '.join(a.uri for a in window)}"
        )
    return TrainingWindow(version, models[-1], spans, files)


def window_statistics(window: TrainingWindow, output_dir: str):
    """TFDV statistics of the window's train split, every span together."""
    import tensorflow_data_validation as tfdv

    return tfdv.generate_statistics_from_tfrecord(
        window.train_files, output_path=os.path.join(output_dir, TRAINING_STATISTICS_FILE)
    )


def _example(complaint: dict) -> bytes:
    import tensorflow as tf

    feature = {}
    for name in features.RAW_INPUT_NAMES:
        if name not in complaint:
            continue  # missing, as the model read it
        value = complaint[name]
        if name in features.INTEGER_INPUT_NAMES:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        else:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def serving_statistics(complaints: Sequence[dict], output_dir: str):
    """TFDV statistics of the logged complaints' features (examples kept next to them)."""
    import tensorflow as tf
    import tensorflow_data_validation as tfdv

    examples_path = os.path.join(output_dir, EXAMPLES_FILE)
    with tf.io.TFRecordWriter(examples_path) as writer:
        for complaint in complaints:
            writer.write(_example(complaint))
    return tfdv.generate_statistics_from_tfrecord(
        examples_path, output_path=os.path.join(output_dir, STATISTICS_FILE)
    )


def serving_schema(schema):
    """The schema's rules for what serving is asked: the model's features only
    (the label, dates and other columns are never sent), and the optional ones
    may be left out of a request (the missing-value rule of models/features.py;
    in a span an empty CSV cell is a present feature with no value, in a
    request it is an absent feature: both are missing to the model)."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    view = schema_pb2.Schema()
    view.CopyFrom(schema)
    del view.feature[:]
    for feature in schema.feature:
        if feature.name not in features.RAW_INPUT_NAMES:
            continue
        kept = view.feature.add()
        kept.CopyFrom(feature)
        if feature.name not in features.REQUIRED_INPUT_NAMES:
            kept.presence.min_fraction = 0.0
            kept.presence.min_count = 0
    view.ClearField("dataset_constraints")
    return view


def measure(training, serving, schema) -> tuple[list[dict], dict[str, str]]:
    """(skew measurements per feature, schema anomalies of the serving statistics)."""
    import tensorflow_data_validation as tfdv

    view = serving_schema(schema)
    result = tfdv.validate_statistics(training, view, serving_statistics=serving)
    measurements = []
    for info in result.drift_skew_info:
        for m in info.skew_measurements:
            measurements.append(
                {
                    "feature": info.path.step[0],
                    "comparator": "L-infinity" if m.type == m.L_INFTY else "Jensen-Shannon",
                    "distance": round(float(m.value), 6),
                    "threshold": float(m.threshold),
                    "beyond": bool(m.value > m.threshold),
                }
            )
    anomalies = tfdv.validate_statistics(serving, view).anomaly_info
    return (
        sorted(measurements, key=lambda m: m["feature"]),
        {name: info.short_description for name, info in sorted(anomalies.items())},
    )


def check(
    config: PipelineConfig,
    since: datetime.date,
    until: datetime.date,
    connection_config=None,
    now: datetime.datetime | None = None,
) -> tuple[SkewResult, str]:
    """Runs one check and keeps it; returns (result, its folder)."""
    import tensorflow as tf
    import tensorflow_data_validation as tfdv

    from components import curated_schema

    try:
        records = list(prediction_log.read_logs(config.prediction_log_prefix, since, until))
    except prediction_log.CorruptLog as error:
        raise SkewError(str(error)) from None
    complaints = [c for r in records for c in prediction_log.logged_complaints(r)]
    if not complaints:
        raise SkewError(
            f"no logged requests under {config.prediction_log_prefix}-*.tfrecord "
            f"from {since} to {until} (is feedback.logging_proxy in front of the server?)"
        )
    answered = collections.Counter(r.log_metadata.model_spec.version.value for r in records)
    if 0 in answered:
        raise SkewError(
            f"{answered[0]} logged request(s) name no model version that answered them: "
            "logs not written by feedback.logging_proxy?"
        )
    # The model that answered most of the traffic: its training data is what
    # the traffic is compared with.
    version = max(answered, key=lambda v: (answered[v], v))
    window = training_window(config, version, connection_config)
    schema = tfdv.load_schema_text(curated_schema.resolve(config.schema_path))
    now = now or datetime.datetime.now(datetime.timezone.utc)
    output_dir = os.path.join(config.pipeline_root, SKEW_DIR, f"{now:%Y%m%dT%H%M%S.%fZ}")
    tf.io.gfile.makedirs(output_dir)
    training = window_statistics(window, output_dir)
    responded = [c for c in complaints if c.get("company_response") not in prepare.OPEN_RESPONSES]
    if not responded:
        raise SkewError(
            f"all {len(complaints):,} logged complaints from {since} to {until} were asked "
            "before the company responded: nothing asked at the prediction moment to compare"
        )
    serving = serving_statistics(responded, output_dir)
    measurements, anomalies = measure(training, serving, schema)
    result = SkewResult(
        checked_at=f"{now:%Y-%m-%d %H:%M} UTC",
        window=[since.isoformat(), until.isoformat()],
        logged_requests=len(records),
        logged_complaints=len(complaints),
        training_statistics={
            "uri": os.path.join(output_dir, TRAINING_STATISTICS_FILE),
            "version": version,
            "model_artifact_id": window.model_id,
            "spans": window.spans,
            "answered": {str(v): n for v, n in sorted(answered.items())},
        },
        measurements=measurements,
        serving_anomalies=anomalies,
        blocks=False,
        asked_before_response=len(complaints) - len(responded),
    )
    result.blocks = config.skew_blocks and bool(result.beyond)
    with tf.io.gfile.GFile(os.path.join(output_dir, RESULT_FILE), "w") as out:
        out.write(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    return result, output_dir


def latest(config: PipelineConfig) -> SkewResult | None:
    """The newest kept check of this pipeline root, or None."""
    import tensorflow as tf

    root = os.path.join(config.pipeline_root, SKEW_DIR)
    if not tf.io.gfile.isdir(root):
        return None
    for name in sorted(tf.io.gfile.listdir(root), reverse=True):
        path = os.path.join(root, name.rstrip("/"), RESULT_FILE)
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                return SkewResult(**json.load(f))
    return None


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    from settings import configs

    parser = argparse.ArgumentParser(
        prog="python -m feedback.skew",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--since",
        type=prediction_log.parse_day,
        help="first UTC day of logs (default: see --until)",
    )
    parser.add_argument(
        "--until",
        type=prediction_log.parse_day,
        help="last UTC day of logs (default: today; the window is --skew-window-days long)",
    )
    config, args = configs.parse_args(parser, argv)
    until = args.until or datetime.datetime.now(datetime.timezone.utc).date()
    since = args.since or until - datetime.timedelta(days=config.skew_window_days - 1)
    if since > until:
        print(f"error: --since {since} is after --until {until}", file=sys.stderr)
        return 2
    try:
        result, output_dir = check(config, since, until)
    except SkewError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("serving skew: " + result.render())
    for m in result.measurements:
        mark = "BEYOND" if m["beyond"] else "ok"
        print(
            f"  {m['feature']:<18} {m['comparator']:<15} {m['distance']:.4f} "
            f"(threshold {m['threshold']:g}) {mark}"
        )
    print(f"kept in {output_dir}")
    return EXIT_SKEW_BLOCKS if result.blocks else 0


if __name__ == "__main__":
    sys.exit(main())
