"""ML Metadata read for the reporting wing: one module holds every query.

The summary, the run history and the report ask here for a run's executions,
what each component produced, and a whole pipeline's records; they read the
artifacts' files themselves. Two MLMD layouts are read: the IR-based runners'
(Beam, Airflow and Kubeflow tasks: `node` and `pipeline_run` contexts) and
TFX's legacy launcher's (InteractiveContext: `component_id` and `run_id`
execution properties).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import artifact_properties as props
from pipeline import node_ids
from settings import metadata

_STATE_WORDS = {
    metadata_store_pb2.Execution.COMPLETE: "finished",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "FAILED",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.NEW: "new",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}


@dataclasses.dataclass
class NodeRun:
    node_id: str
    state: str
    seconds: float
    outputs: dict[str, list[metadata_store_pb2.Artifact]]
    started: float = 0.0  # seconds since the epoch, as ML Metadata recorded it
    # The execution's recorded parameters (TFX's exec properties), as text.
    properties: dict[str, str] = dataclasses.field(default_factory=dict)
    execution_id: int = 0  # its id in ML Metadata

    def artifact(self, key: str) -> metadata_store_pb2.Artifact | None:
        artifacts = self.outputs.get(key) or []
        return artifacts[-1] if artifacts else None


def node_state(connection_config, pipeline_name: str, run_id: str | None, node_id: str) -> str:
    """'finished', 'cached', ... for one component's execution in run `run_id`."""
    store = metadata_store.MetadataStore(connection_config)
    node = store.get_context_by_type_and_name(
        "node", node_ids.node_context_name(pipeline_name, node_id)
    )
    run = store.get_context_by_type_and_name("pipeline_run", run_id) if run_id else None
    if node is None or run is None:
        return "done (no execution recorded)"
    in_run = {e.id for e in store.get_executions_by_context(run.id)}
    executions = [e for e in store.get_executions_by_context(node.id) if e.id in in_run]
    if not executions:
        return "done (no execution recorded)"
    return state_word(max(executions, key=lambda e: e.id))


def _context_types(store) -> dict[int, str]:
    return {t.id: t.name for t in store.get_context_types()}


def _node_id(store, execution, pipeline_name: str, type_names: dict[int, str]) -> str | None:
    """The component id of an execution, in either MLMD layout TFX writes.

    IR-based runners (Beam, Airflow, Kubeflow) put it in a `node` context
    named `<pipeline>.<id>`; TFX's legacy launcher (InteractiveContext, and
    stores written by TFX's AirflowDagRunner) in the execution's
    `component_id` property.
    """
    if "component_id" in execution.properties:
        return execution.properties["component_id"].string_value
    prefix = pipeline_name + "."
    return next(
        (
            c.name[len(prefix) :]
            for c in store.get_contexts_by_execution(execution.id)
            if type_names.get(c.type_id) == "node" and c.name.startswith(prefix)
        ),
        None,
    )


def _run_id(store, execution, type_names: dict[int, str]) -> str | None:
    if "run_id" in execution.properties:
        return execution.properties["run_id"].string_value
    return next(
        (
            c.name
            for c in store.get_contexts_by_execution(execution.id)
            if type_names.get(c.type_id) == "pipeline_run"
        ),
        None,
    )


def state_word(execution) -> str:
    return _STATE_WORDS.get(metadata.execution_state(execution), "unknown")


def run_executions(
    store, pipeline_name: str, run_id: str | None = None
) -> tuple[str | None, dict[str, object]]:
    """The run `run_id` (the newest run when None) and the newest execution
    of every component in it.

    IR-based runners record every component in each run (cached ones too), so
    a run is read whole, and a failed run never borrows an older run's push.
    The legacy launcher's runs are read per component instead: an interactive
    notebook runs each component in a run of its own.
    """
    type_names = _context_types(store)
    if run_id is not None:  # one named run (IR-based runners record runs)
        run_context = store.get_context_by_type_and_name("pipeline_run", run_id)
        if run_context is None:
            raise ValueError(f"no run {run_id!r} of {pipeline_name} in this store")
        executions = store.get_executions_by_context(run_context.id)
        return run_id, {
            node_id: execution
            for execution in sorted(executions, key=lambda e: e.id)
            if (node_id := _node_id(store, execution, pipeline_name, type_names)) is not None
        }
    pipeline_context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    executions = store.get_executions_by_context(pipeline_context.id) if pipeline_context else []
    if not executions:
        return None, {}
    newest = max(executions, key=lambda e: e.id)
    run_id = _run_id(store, newest, type_names)
    if "run_id" not in newest.properties and run_id is not None:
        run_context = store.get_context_by_type_and_name("pipeline_run", run_id)
        executions = store.get_executions_by_context(run_context.id)
    latest = {}
    for execution in sorted(executions, key=lambda e: e.id):
        node_id = _node_id(store, execution, pipeline_name, type_names)
        if node_id is not None:
            latest[node_id] = execution
    return run_id, latest


def read_run(
    connection_config, pipeline_name: str, run_id: str | None = None
) -> tuple[str | None, dict[str, NodeRun]]:
    """The run `run_id` (the newest when None) and what each of its
    components did; ValueError for a run the store does not hold."""
    store = metadata_store.MetadataStore(connection_config)
    run_id, executions = run_executions(store, pipeline_name, run_id)
    return run_id, node_runs(store, executions) if executions else {}


def node_runs(store, executions: dict[str, Any]) -> dict[str, NodeRun]:
    events = store.get_events_by_execution_ids([e.id for e in executions.values()])
    # Resolvers record what they resolved as INTERNAL_OUTPUT.
    artifact_ids = {
        ev.artifact_id
        for ev in events
        if ev.type
        in (
            metadata_store_pb2.Event.OUTPUT,
            metadata_store_pb2.Event.DECLARED_OUTPUT,
            metadata_store_pb2.Event.INTERNAL_OUTPUT,
        )
    }
    artifacts = {a.id: a for a in store.get_artifacts_by_id(list(artifact_ids))}
    runs = {}
    for node_id, execution in sorted(executions.items(), key=lambda item: item[1].id):
        outputs: dict[str, list] = {}
        for ev in events:
            if (
                ev.execution_id == execution.id
                and ev.artifact_id in artifacts
                and ev.type != metadata_store_pb2.Event.INPUT
            ):
                key = ev.path.steps[0].key if ev.path.steps else ""
                outputs.setdefault(key, []).append(artifacts[ev.artifact_id])
        seconds = (
            execution.last_update_time_since_epoch - execution.create_time_since_epoch
        ) / 1000.0
        runs[node_id] = NodeRun(
            node_id,
            state_word(execution),
            seconds,
            outputs,
            execution.create_time_since_epoch / 1000.0,
            {
                name: str(getattr(value, value.WhichOneof("value")))
                for name, value in execution.custom_properties.items()
                if value.WhichOneof("value") in ("string_value", "int_value", "double_value")
            },
            execution.id,
        )
    return runs


def run_context_id(connection_config, run_id: str) -> int | None:
    """The id of a run's `pipeline_run` context (None: no such run)."""
    store = metadata_store.MetadataStore(connection_config)
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    return run.id if run is not None else None


def run_property(connection_config, run_id: str | None, name: str) -> str | None:
    """A property the runner recorded on a run's `pipeline_run` context."""
    if run_id is None:
        return None
    store = metadata_store.MetadataStore(connection_config)
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    if run is None or name not in run.custom_properties:
        return None
    return run.custom_properties[name].string_value


def artifact_property(artifact, name: str):
    for properties in (artifact.custom_properties, artifact.properties):
        if name in properties:
            value = properties[name]
            return getattr(value, value.WhichOneof("value"))
    return None


class PipelineRecords:
    """Every execution, event and artifact of one pipeline in a store, read
    once, with each execution's node and run: what the run history walks."""

    def __init__(self, connection_config, pipeline_name: str):
        self.store = metadata_store.MetadataStore(connection_config)
        self.prefix = pipeline_name + "."
        pipeline = self.store.get_context_by_type_and_name("pipeline", pipeline_name)
        executions = self.store.get_executions_by_context(pipeline.id) if pipeline else []
        self.node_of: dict[int, str] = {}
        run_of: dict[int, str] = {}
        for execution in executions:
            for context in self.store.get_contexts_by_execution(execution.id):
                if context.name.startswith(self.prefix):
                    self.node_of[execution.id] = context.name[len(self.prefix) :]
                elif context.type_id == self._run_type_id():
                    run_of[execution.id] = context.name
        first_execution: dict[str, int] = {}
        for execution_id, run_id in run_of.items():
            first_execution[run_id] = min(execution_id, first_execution.get(run_id, execution_id))
        self.run_ids = sorted(first_execution, key=lambda run: first_execution[run])
        self.run_of = run_of
        self.executions = {e.id: e for e in executions}
        self.events = self.store.get_events_by_execution_ids(list(self.executions))
        self.artifacts = {
            a.id: a
            for a in self.store.get_artifacts_by_id(list({e.artifact_id for e in self.events}))
        }
        versions = []
        for artifact in self.artifacts.values():
            version = artifact_property(artifact, props.PUSHED_VERSION)
            if artifact_property(artifact, props.PUSHED) and version not in versions:
                versions.append(version)
        # Each pushed version's place among them (1 = the first pushed).
        self.version_numbers = {v: i for i, v in enumerate(sorted(versions, key=int), 1)}

    def _run_type_id(self) -> int | None:
        """None in a store only TFX's legacy launcher wrote (InteractiveContext):
        it records no pipeline runs, so there is no run history to read."""
        if not hasattr(self, "_run_type"):
            from ml_metadata import errors

            try:
                self._run_type = self.store.get_context_type("pipeline_run").id
            except errors.NotFoundError:
                self._run_type = None
        return self._run_type

    def _executions_of(self, run_id: str) -> list:
        return [e for e in self.executions.values() if self.run_of.get(e.id) == run_id]

    def states_of(self, run_id: str) -> dict[str, str]:
        """{node id: 'finished', 'cached', 'FAILED', ...} of a run's executions."""
        return {
            self.node_of[e.id]: state_word(e)
            for e in sorted(self._executions_of(run_id), key=lambda e: e.id)
            if e.id in self.node_of
        }

    def started_of(self, run_id: str) -> float | None:
        """When the run's first execution started, in seconds since the epoch."""
        executions = self._executions_of(run_id)
        if not executions:
            return None
        return min(e.create_time_since_epoch for e in executions) / 1000.0

    def seconds_of(self, run_id: str) -> float | None:
        """From the run's first execution's start to its last one's last update."""
        executions = self._executions_of(run_id)
        if not executions:
            return None
        start = min(e.create_time_since_epoch for e in executions)
        return (max(e.last_update_time_since_epoch for e in executions) - start) / 1000.0

    def run_name(self, run_id: str) -> str:
        return f"run {self.run_ids.index(run_id) + 1}"

    def producer_run(self, artifact_id: int) -> str:
        """The run whose component wrote the artifact (a resolver's execution
        also records what it resolved as its output: not a producer)."""
        for event in self.events:
            if (
                event.artifact_id == artifact_id
                and event.type == metadata_store_pb2.Event.OUTPUT
                and event.execution_id in self.run_of
                and self.node_of.get(event.execution_id) not in node_ids.RESOLVERS
            ):
                return self.run_name(self.run_of[event.execution_id])
        return "another pipeline"

    def artifact_id_by_uri(self, uri: str) -> int | None:
        return next((a.id for a in self.artifacts.values() if a.uri == uri), None)

    def artifacts_of(self, run_id: str, node_id: str, key: str, kind) -> list:
        ids = [
            e.id
            for e in self.executions.values()
            if self.run_of.get(e.id) == run_id and self.node_of.get(e.id) == node_id
        ]
        return [
            self.artifacts[ev.artifact_id]
            for ev in self.events
            if ev.execution_id in ids
            and ev.type == kind
            and ev.path.steps
            and ev.path.steps[0].key == key
        ]
