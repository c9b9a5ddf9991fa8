"""Every run's decisions, read back from ML Metadata: one row per pipeline run.

For each run of the pipeline (oldest first): which span CsvExampleGen read,
which spans Transform and Trainer trained on (the window), which statistics drift was measured against, which model the Evaluator
compared the candidate with, whether it blessed it, and what the Pusher did.
Artifacts from earlier runs are named by the run that produced them ("run 1"),
and pushed versions by their order ("v1"), so the history of two stores can be
compared row by row: the Beam run and the Kubeflow replay of the same data
must read the same way (tests/runners/test_kfp_parity.py).

Reads the layout of the IR-based runners (Beam, Kubeflow's node tasks), where
each run is a `pipeline_run` context.

    python -m reporting.run_history --metadata-path build/metadata/metadata.sqlite
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.idempotent_pusher import REUSED_VERSION_KEY
from pipeline import node_ids

COLUMNS = (
    "run",
    "span read",
    "trained on spans",
    "drift measured against",
    "candidate compared with",
    "blessed",
    "pushed",
)


@dataclasses.dataclass
class RunDecisions:
    run: int
    run_id: str
    span: int | None
    window: list[int]
    drift_baseline: str
    baseline_model: str
    blessed: bool | None
    pushed: str

    def cells(self) -> list[str]:
        blessed = "not reached" if self.blessed is None else ("yes" if self.blessed else "no")
        return [
            str(self.run),
            "-" if self.span is None else str(self.span),
            ", ".join(map(str, self.window)) or "-",
            self.drift_baseline,
            self.baseline_model,
            blessed,
            self.pushed,
        ]

    def decisions(self) -> tuple:
        """Everything but the run id: what two runners must agree on."""
        return tuple(self.cells())


def _property(artifact, name: str):
    for properties in (artifact.custom_properties, artifact.properties):
        if name in properties:
            value = properties[name]
            return getattr(value, value.WhichOneof("value"))
    return None


class _Store:
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
            version = _property(artifact, "pushed_version")
            if _property(artifact, "pushed") and version not in versions:
                versions.append(version)
        self.version_names = {v: f"v{i}" for i, v in enumerate(sorted(versions, key=int), 1)}

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


def history(connection_config, pipeline_name: str) -> list[RunDecisions]:
    """One RunDecisions per run of `pipeline_name`, oldest first.

    Baselines are read from what the components recorded themselves (the
    gate's report names the statistics it compared with, the blessing names
    the baseline model's id), not from MLMD input events: when a baseline is
    the same artifact as another input (a cached StatisticsGen on an unchanged
    span), MLMD keeps one event for it, and which one depends on input order.
    """
    from components import validation_gate

    store = _Store(connection_config, pipeline_name)
    outputs, inputs = metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.INPUT
    span_by_run: dict[str, int | None] = {}
    rows = []
    for number, run_id in enumerate(store.run_ids, 1):
        examples = store.artifacts_of(run_id, node_ids.EXAMPLE_GEN, "examples", outputs)
        validation = store.artifacts_of(run_id, "DataValidationGate", "validation", outputs)
        blessing = store.artifacts_of(run_id, node_ids.EVALUATOR, "blessing", outputs)
        pushed = store.artifacts_of(run_id, node_ids.PUSHER, "pushed_model", outputs)
        window = sorted(
            _property(a, "span")
            for a in store.artifacts_of(run_id, node_ids.TRANSFORM, "examples", inputs)
        )
        span_by_run[store.run_name(run_id)] = _property(examples[0], "span") if examples else None

        drift = "-"
        if validation:
            baseline = validation_gate.read_report(validation[0].uri).get("drift_baseline")
            if baseline is None:
                drift = "nothing (first statistics)"
            else:
                artifact_id = store.artifact_id_by_uri(baseline["uri"])
                if artifact_id is None:  # recorded by a run of another store
                    drift = f"statistics at {baseline['uri']} (not in this store)"
                else:
                    producer = store.producer_run(artifact_id)
                    drift = f"span {span_by_run.get(producer)} statistics ({producer})"
        compared = "-"
        if blessing:
            baseline_id = _property(blessing[0], "baseline_model_id")
            compared = (
                "nothing (no blessed model yet)"
                if baseline_id is None
                else f"{store.producer_run(baseline_id)}'s model"
            )
        if not pushed:
            push = "-"
        elif not _property(pushed[0], "pushed"):
            push = "nothing"
        else:
            version = store.version_names[_property(pushed[0], "pushed_version")]
            push = (
                f"nothing new ({version} is this model)"
                if _property(pushed[0], REUSED_VERSION_KEY)
                else f"new version {version}"
            )
        rows.append(
            RunDecisions(
                run=number,
                run_id=run_id,
                span=span_by_run[store.run_name(run_id)],
                window=window,
                drift_baseline=drift,
                baseline_model=compared,
                blessed=bool(_property(blessing[0], "blessed")) if blessing else None,
                pushed=push,
            )
        )
    return rows


def markdown(rows: Sequence[RunDecisions], columns: Sequence[str] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from settings import configs, metadata

    parser = argparse.ArgumentParser(
        prog="python -m reporting.run_history",
        description="Print every run's decisions (span, training window, drift baseline, compared model, "
        "blessing, push) from ML Metadata as a Markdown table.",
    )
    config, _ = configs.parse_args(parser, argv)
    rows = history(metadata.connection_config(config), config.pipeline_name)
    if not rows:
        print(f"No run of {config.pipeline_name} in {metadata.describe(config)}.", file=sys.stderr)
        return 1
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
