"""The data validation gate: the run stops here, before Transform and Trainer,
when a span breaks the schema.

TFX's ExampleValidator only records anomalies; a run goes on to train on bad
data unless something refuses. This component reads ExampleValidator's
anomalies for every split and fails the run with a message naming the span,
its files, each feature and its anomaly. Nothing downstream executes, so the
Pusher never replaces the served model.

It also measures drift: the span's train statistics against those of the
newest validated span before it (the previous month of data, also on a re-run
or after a backfill), with the schema's drift comparators (L-infinity for
categoricals, Jensen-Shannon for numerics). Drift is reported, and blocks only with `drift_blocks` (config
`--drift-blocks`): distributions legitimately move between monthly exports
and the Evaluator's thresholds already guard the served model, while a schema
anomaly is a data bug.
"""

# No `from __future__ import annotations`: TFX reads the typehints at runtime.
import json
import os
import re

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.common import resolver
from tfx.types import artifact, standard_artifacts

from components import artifact_properties, validation_files
from data.listing import shortened
from settings.configs import SPAN_SPEC

REPORT_FILE = "validation_report.json"
DRIFT_SPLIT = "train"
_DRIFT_REASONS = ("COMPARATOR_L_INFTY_HIGH", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH")


class DataValidation(artifact.Artifact):
    """The gate's verdict: `validation_report.json` (anomalies, drift, baseline)."""

    # KFP v2 accepts custom types named "<module>.<Class>" (one module segment)
    # and its container imports the class by that name: components/__init__.py
    # exports it.
    TYPE_NAME = "components.DataValidation"


class DataValidationError(RuntimeError):
    """Bad data: the run stopped before Transform."""


_PASSED = ("COMPLETE", "CACHED")


def passed_gate(store, artifact_id: int, event: str = "INPUT") -> bool:
    """Whether a DataValidationGate execution that completed (or was cached)
    read this artifact (or, with event="OUTPUT", wrote it): the one test of
    "validated" for the strategies below."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    from settings import metadata

    passed = [getattr(pb.Execution, state) for state in _PASSED]
    gate_type = f"{__name__}.DataValidationGate"
    execution_ids = [
        e.execution_id
        for e in store.get_events_by_artifact_ids([artifact_id])
        if e.type == getattr(pb.Event, event)
    ]
    for execution in store.get_executions_by_id(execution_ids):
        execution_type = store.get_execution_types_by_id([execution.type_id])[0]
        if execution_type.name == gate_type and metadata.execution_state(execution) in passed:
            return True
    return False


class EarlierValidationsStrategy(resolver.ResolverStrategy):
    """The drift baseline's candidates: one passed validation per validated
    span, newest span first; the gate compares its span with the newest
    earlier one among them (`drift_baseline`).

    Validations, not statistics: StatisticsGen records span 0, so resolved
    statistics could not say which span they describe, and on a re-run whose
    StatisticsGen was cached the newest validated statistics were this run's
    own (the span was compared with itself). A validation names its span and
    its statistics. A run stopped by the gate publishes no validation, so a
    refused span is never a baseline. Per span: the oldest validation of that
    span's newest statistics, so that re-runs resolve the same artifacts and
    the gate's cache holds.
    """

    def resolve_artifacts(self, store, input_dict):
        result = {}
        for key, artifacts in input_dict.items():
            passed = sorted(
                (
                    a
                    for a in artifacts
                    # Validations written before they named their statistics are skipped.
                    if a.has_custom_property(artifact_properties.STATISTICS_URI)
                    and passed_gate(store, a.id, "OUTPUT")
                ),
                key=lambda a: a.id,
            )
            newest_statistics = {span_of(a): _statistics_uri(a) for a in passed}
            chosen: dict = {}
            for validation in passed:
                span = span_of(validation)
                if span not in chosen and _statistics_uri(validation) == newest_statistics[span]:
                    chosen[span] = validation
            result[key] = [chosen[span] for span in sorted(chosen, reverse=True)]
        return result


def _statistics_uri(validation) -> str:
    return validation.get_string_custom_property(artifact_properties.STATISTICS_URI)


def drift_baseline(span: int, earlier_validations) -> str | None:
    """The statistics URI the span is compared with: those of the newest
    validated span before it (the previous month of data, whatever order the
    runs came in; the same on a re-run), or None for the oldest span."""
    earlier = [v for v in earlier_validations or [] if span_of(v) < span]
    if not earlier:
        return None
    return _statistics_uri(max(earlier, key=span_of))


class ValidatedSpanWindowStrategy(resolver.ResolverStrategy):
    """The training window: examples of the newest `num_spans` spans that passed
    the gate, newest span first (one artifact per span, the latest validated).

    The resolver runs after this run's gate, so this run's span is in it. A
    span the gate refused never enters a window, also not in a later run.
    Newest means the highest span number, i.e. the newest data (spans are
    named by their last day), not the latest ingestion: a backfilled old span
    joins the window only if it is among the newest `num_spans`.
    """

    def __init__(self, num_spans: int):
        if num_spans < 1:
            raise ValueError(f"the training window needs at least one span, not {num_spans}")
        self._num_spans = num_spans

    def resolve_artifacts(self, store, input_dict):
        result = {}
        for key, artifacts in input_dict.items():
            validated = {}
            for candidate in sorted(artifacts, key=lambda a: a.id, reverse=True):
                span = span_of(candidate)
                if span not in validated and passed_gate(store, candidate.id):
                    validated[span] = candidate
            newest = sorted(validated, reverse=True)[: self._num_spans]
            result[key] = [validated[span] for span in newest]
        return result


def span_of(artifact_) -> int:
    # TFX 1.16 records an Examples artifact's span as a custom property, and
    # StatisticsGen then copies a 0 into its statistics' span property.
    if artifact_.has_custom_property(artifact_properties.SPAN):
        return artifact_.get_int_custom_property(artifact_properties.SPAN)
    return artifact_.span


def _too_few_examples(statistics, schema, anomalies: dict[str, list]) -> None:
    """Adds a dataset anomaly for splits below the schema's minimum example count.

    TFDV reports nothing at all for a split without examples (an empty or
    header-only span), so the gate checks the count itself.
    """
    minimum = max(schema.dataset_constraints.min_examples_count, 1)
    for split in validation_files.split_names(statistics.split_names):
        count = validation_files.num_examples(statistics.uri, split)
        found = anomalies.setdefault(split, [])
        if count < minimum and not any(a["feature"] == validation_files.DATASET for a in found):
            found.append(
                {
                    "feature": validation_files.DATASET,
                    "anomaly": "Too few examples",
                    "detail": f"{count} examples; the schema requires at least {minimum}",
                }
            )


def measure_drift(current, baseline, schema) -> list[dict]:
    """Features whose drift comparator fires, with TFDV's description of by how much."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    drift_types = {anomalies_pb2.AnomalyInfo.Type.Value(t) for t in _DRIFT_REASONS}
    result = tfdv.validate_statistics(current, schema, previous_statistics=baseline)
    drifted = []
    for name, info in sorted(result.anomaly_info.items()):
        for reason in info.reason:
            if reason.type in drift_types:
                drifted.append({"feature": name, "detail": reason.description})
    return drifted


# TFDV lists every unexpected value as "value (~N%)", comma-separated.
_VALUE_LIST = re.compile(r"(?<=%\)), ")


def shortened_detail(detail: str) -> str:
    """TFDV's anomaly text with its value list cut to the first few."""
    head, colon, values = detail.partition(": ")
    items = _VALUE_LIST.split(values)
    return head + colon + shortened(items) if colon and len(items) > 1 else detail


def problem_lines(report: dict) -> list[str]:
    lines = [
        f"  {split}: {a['feature']}: {a['anomaly']}: {shortened_detail(a['detail'])}"
        for split, found in report["anomalies"].items()
        for a in found
    ]
    if report["drift_blocks"]:
        lines += [f"  drift: {d['feature']}: {d['detail']}" for d in report["drift"]]
    return lines


@component
def DataValidationGate(
    examples: InputArtifact[standard_artifacts.Examples],
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    validation: OutputArtifact[DataValidation],
    earlier_validations: InputArtifact[list[DataValidation]] = None,
    data_location: Parameter[str] = "",
    drift_blocks: Parameter[bool] = False,
    schema_review: Parameter[str] = "",
) -> None:
    import tensorflow_data_validation as tfdv
    from tfx.utils import io_utils

    span = span_of(examples)
    location = data_location.replace(SPAN_SPEC, str(span))
    # Published only if the gate passes; the next spans' drift baseline.
    validation.set_int_custom_property(artifact_properties.SPAN, span)
    validation.set_string_custom_property(artifact_properties.STATISTICS_URI, statistics.uri)
    schema_proto = tfdv.load_schema_text(os.path.join(schema.uri, "schema.pbtxt"))
    found = {
        split: validation_files.read_anomalies(anomalies.uri, split)
        for split in validation_files.split_names(anomalies.split_names)
    }
    _too_few_examples(statistics, schema_proto, found)
    report = {
        "span": span,
        "data": location,
        "anomalies": found,
        "drift": [],
        "drift_baseline": None,
        "drift_blocks": bool(drift_blocks),
        # The command that shows what accepting this span's values would
        # change in the schema, with the run's paths (data/schema.py).
        "schema_review": schema_review.replace(SPAN_SPEC, str(span)),
    }
    baseline_uri = drift_baseline(span, earlier_validations)
    if baseline_uri is not None:
        report["drift_baseline"] = {"uri": baseline_uri}
        report["drift"] = measure_drift(
            validation_files.read_statistics(statistics.uri, DRIFT_SPLIT),
            validation_files.read_statistics(baseline_uri, DRIFT_SPLIT),
            schema_proto,
        )
    io_utils.write_string_file(
        os.path.join(validation.uri, REPORT_FILE), json.dumps(report, indent=2)
    )
    problems = problem_lines(report)
    if problems:
        raise DataValidationError(
            f"data validation stopped the run before Transform: span {span} ({location}):\n"
            + "\n".join(problems)
            + "\nNothing after validation ran. Fix the data, or if CFPB's values really "
            "changed, review what accepting them changes"
            + (f": `{report['schema_review']}` (`accept` writes it)" if schema_review else "")
            + " (docs/data-validation.md)."
        )


def read_report(validation_uri: str) -> dict:
    from tfx.utils import io_utils

    return json.loads(io_utils.read_string_file(os.path.join(validation_uri, REPORT_FILE)))
