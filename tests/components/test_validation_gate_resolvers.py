"""The gate's two resolver strategies against a real (in-memory) ML Metadata
store: what counts as validated, and which spans make the training window."""

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_artifacts

from components import validation_gate

COMPLETE = metadata_store_pb2.Execution.COMPLETE
FAILED = metadata_store_pb2.Execution.FAILED


class _History:
    """Examples artifacts, each read by a gate execution that passed or failed."""

    def __init__(self):
        config = metadata_store_pb2.ConnectionConfig()
        config.fake_database.SetInParent()
        self.store = metadata_store.MetadataStore(config)
        self.examples_type = self.store.put_artifact_type(
            metadata_store_pb2.ArtifactType(name="Examples")
        )
        self.gate_type = self.store.put_execution_type(
            metadata_store_pb2.ExecutionType(name="components.validation_gate.DataValidationGate")
        )
        self.other_type = self.store.put_execution_type(
            metadata_store_pb2.ExecutionType(name="Transform")
        )
        self.artifacts = []

    def add(self, span: int, gate_state=COMPLETE, reader=None) -> standard_artifacts.Examples:
        mlmd = metadata_store_pb2.Artifact(type_id=self.examples_type, uri=f"/examples/{span}")
        mlmd.custom_properties["span"].int_value = span
        [mlmd.id] = self.store.put_artifacts([mlmd])
        if gate_state is not None:
            execution = metadata_store_pb2.Execution(
                type_id=reader or self.gate_type, last_known_state=gate_state
            )
            event = metadata_store_pb2.Event(
                artifact_id=mlmd.id, type=metadata_store_pb2.Event.INPUT
            )
            self.store.put_execution(execution, [(mlmd, event)], contexts=[])
        examples = standard_artifacts.Examples()
        examples.set_mlmd_artifact(mlmd)
        self.artifacts.append(examples)
        return examples

    def window(self, num_spans: int) -> list:
        strategy = validation_gate.ValidatedSpanWindowStrategy(num_spans)
        resolved = strategy.resolve_artifacts(self.store, {"examples": list(self.artifacts)})
        return [(validation_gate.span_of(a), a.id) for a in resolved["examples"]]


def test_the_window_is_the_newest_validated_spans_newest_first():
    history = _History()
    for span in (20141113, 20150319, 20150430, 20150531):
        history.add(span)
    assert [span for span, _ in history.window(3)] == [20150531, 20150430, 20150319]
    assert [span for span, _ in history.window(10)] == [20150531, 20150430, 20150319, 20141113]


def test_a_refused_or_unvalidated_span_never_enters_the_window():
    history = _History()
    history.add(20150319)
    history.add(20150430, gate_state=FAILED)  # the gate refused it
    history.add(20150531, gate_state=None)  # never reached the gate
    history.add(20150630, reader=history.other_type)  # read, but not by the gate
    assert [span for span, _ in history.window(3)] == [20150319]


def test_one_artifact_per_span_the_latest_validated():
    history = _History()
    older = history.add(20150319)
    newer = history.add(20150319)
    history.add(20150319, gate_state=FAILED)  # a re-ingestion the gate refused
    assert history.window(3) == [(20150319, newer.id)]
    assert older.id < newer.id


def test_a_backfilled_old_span_joins_only_if_among_the_newest():
    history = _History()
    for span in (20150319, 20150430, 20150531):
        history.add(span)
    history.add(20141113)  # ingested last, but the oldest data
    assert [span for span, _ in history.window(3)] == [20150531, 20150430, 20150319]
    assert [span for span, _ in history.window(4)][-1] == 20141113


def test_the_window_needs_a_span():
    with pytest.raises(ValueError, match="at least one span"):
        validation_gate.ValidatedSpanWindowStrategy(0)


def _validations(store, passed: list[tuple[int, str]], failed=()) -> list:
    """DataValidation artifacts written by gate executions that passed (or
    failed), each naming its span and statistics, oldest first."""
    from components import artifact_properties as props

    validation_type = store.put_artifact_type(
        metadata_store_pb2.ArtifactType(name=validation_gate.DataValidation.TYPE_NAME)
    )
    gate_type = store.put_execution_type(
        metadata_store_pb2.ExecutionType(name="components.validation_gate.DataValidationGate")
    )
    artifacts = []
    for (span, statistics), state in [(p, COMPLETE) for p in passed] + [
        (f, FAILED) for f in failed
    ]:
        mlmd = metadata_store_pb2.Artifact(type_id=validation_type, uri=f"/validation/{span}")
        mlmd.custom_properties[props.SPAN].int_value = span
        mlmd.custom_properties[props.STATISTICS_URI].string_value = statistics
        [mlmd.id] = store.put_artifacts([mlmd])
        event = metadata_store_pb2.Event(artifact_id=mlmd.id, type=metadata_store_pb2.Event.OUTPUT)
        execution = metadata_store_pb2.Execution(type_id=gate_type, last_known_state=state)
        store.put_execution(execution, [(mlmd, event)], contexts=[])
        validation = validation_gate.DataValidation()
        validation.set_mlmd_artifact(mlmd)
        artifacts.append(validation)
    return artifacts


def test_the_drift_baseline_is_the_previous_validated_span():
    store = _History().store
    earlier = _validations(
        store,
        passed=[
            (20150430, "/stats/april"),
            (20150319, "/stats/march"),  # a backfill, validated after April
            (20150430, "/stats/april"),  # April re-run, its statistics cached
            (20150430, "/stats/april-2"),  # April ingested again
            (20150430, "/stats/april-2"),
        ],
        failed=[(20150531, "/stats/may-refused")],
    )
    strategy = validation_gate.EarlierValidationsStrategy()
    resolved = strategy.resolve_artifacts(store, {"validations": earlier})["validations"]
    # One per span, newest span first: the oldest validation of the span's
    # newest statistics (what re-runs resolve again); the refused span is not one.
    assert [a.id for a in resolved] == [earlier[3].id, earlier[1].id]
    # A new span is compared with the newest span before it; a re-run of April
    # (its own validation resolved) with March, as the first time, not with
    # itself; the oldest span with nothing.
    assert validation_gate.drift_baseline(20150531, resolved) == "/stats/april-2"
    assert validation_gate.drift_baseline(20150430, resolved) == "/stats/march"
    assert validation_gate.drift_baseline(20150319, resolved) is None
    assert validation_gate.drift_baseline(20150319, None) is None
    assert strategy.resolve_artifacts(store, {"validations": []}) == {"validations": []}
