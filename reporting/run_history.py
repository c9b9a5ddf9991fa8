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

from ml_metadata.proto import metadata_store_pb2

from components import artifact_properties as props
from pipeline import node_ids
from reporting import queries

COLUMNS = (
    "run",
    "span read",
    "trained on spans",
    "drift measured against",
    "candidate compared with",
    "blessed",
    "pushed",
)


# What the Pusher did in a run (RunDecisions.push).
NEW, REUSED, REFUSED, NOTHING, NOT_REACHED = "new", "reused", "refused", "nothing", "-"


@dataclasses.dataclass
class RunDecisions:
    run: int
    run_id: str
    span: int | None
    window: list[int]
    drift_baseline: str
    baseline_model: str
    blessed: bool | None
    push: str  # NEW, REUSED, REFUSED, NOTHING or NOT_REACHED
    # The version folder TF Serving serves it from (the one name of a
    # version everywhere a user reads), and its place among the store's
    # pushed versions (1 = first): two stores compare by place, since their
    # folders are named by the time of the push.
    version: str | None = None
    version_number: int | None = None
    status: str = ""
    auc: float | None = None
    seconds: float | None = None
    started: float | None = None  # seconds since the epoch

    def pushed_text(self, version: str | None = None) -> str:
        version = version or self.version
        return {
            NEW: f"new version {version}",
            REUSED: f"nothing new ({version} is this model)",
            REFUSED: "refused: another run pushed since the comparison",
            NOTHING: "nothing",
        }.get(self.push, "-")

    @property
    def pushed(self) -> str:
        return self.pushed_text()

    def cells(self) -> list[str]:
        return self._cells(self.pushed)

    def _cells(self, pushed: str) -> list[str]:
        blessed = "not reached" if self.blessed is None else ("yes" if self.blessed else "no")
        return [
            str(self.run),
            "-" if self.span is None else str(self.span),
            ", ".join(map(str, self.window)) or "-",
            self.drift_baseline,
            self.baseline_model,
            blessed,
            pushed,
        ]

    def decisions(self) -> tuple:
        """Everything but the run id, the times and the measurements: what
        two runners must agree on (versions by their place in the store)."""
        ordinal = None if self.version_number is None else f"#{self.version_number}"
        return (*self._cells(self.pushed_text(ordinal))[1:], self.status)


def history(connection_config, pipeline_name: str) -> list[RunDecisions]:
    """One RunDecisions per run of `pipeline_name`, oldest first.

    Baselines are read from what the components recorded themselves (the
    gate's report names the statistics it compared with, the blessing names
    the baseline model's id), not from MLMD input events: when a baseline is
    the same artifact as another input (a cached StatisticsGen on an unchanged
    span), MLMD keeps one event for it, and which one depends on input order.
    """
    from components import validation_gate

    store = queries.PipelineRecords(connection_config, pipeline_name)
    outputs, inputs = metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.INPUT
    span_by_run: dict[str, int | None] = {}
    rows = []
    for number, run_id in enumerate(store.run_ids, 1):
        examples = store.artifacts_of(run_id, node_ids.EXAMPLE_GEN, "examples", outputs)
        validation = store.artifacts_of(run_id, node_ids.VALIDATION_GATE, "validation", outputs)
        blessing = store.artifacts_of(run_id, node_ids.EVALUATOR, "blessing", outputs)
        pushed = store.artifacts_of(run_id, node_ids.PUSHER, "pushed_model", outputs)
        window = sorted(
            queries.artifact_property(a, props.SPAN)
            for a in store.artifacts_of(run_id, node_ids.TRANSFORM, "examples", inputs)
        )
        span_by_run[store.run_name(run_id)] = (
            queries.artifact_property(examples[0], props.SPAN) if examples else None
        )

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
            baseline_id = queries.artifact_property(blessing[0], props.BASELINE_MODEL_ID)
            compared = (
                "nothing (no blessed model yet)"
                if baseline_id is None
                else f"{store.producer_run(baseline_id)}'s model"
            )
        version = version_number = None
        states = store.states_of(run_id)
        if not pushed:
            push = NOT_REACHED
        elif queries.artifact_property(pushed[0], props.PUSH_REFUSED):
            push = REFUSED
        elif not queries.artifact_property(pushed[0], props.PUSHED):
            push = NOTHING
        else:
            version = str(queries.artifact_property(pushed[0], props.PUSHED_VERSION))
            version_number = store.version_numbers[version]
            # A cached Pusher's output is the push of the run that made it.
            reused = (
                queries.artifact_property(pushed[0], props.REUSED_VERSION)
                or states.get(node_ids.PUSHER) == "cached"
            )
            push = REUSED if reused else NEW
        blessed = bool(queries.artifact_property(blessing[0], props.BLESSED)) if blessing else None
        evaluation = store.artifacts_of(run_id, node_ids.EVALUATOR, "evaluation", outputs)
        rows.append(
            RunDecisions(
                run=number,
                run_id=run_id,
                span=span_by_run[store.run_name(run_id)],
                window=window,
                drift_baseline=drift,
                baseline_model=compared,
                blessed=blessed,
                push=push,
                version=version,
                version_number=version_number,
                status=_status(states, blessed, push),
                auc=_overall_auc(evaluation[0].uri) if evaluation else None,
                seconds=store.seconds_of(run_id),
                started=store.started_of(run_id),
            )
        )
    return rows


def _status(states: dict[str, str], blessed: bool | None, push: str) -> str:
    """A run in a few words: how far it got and what it left served."""
    failed = [node for node, state in states.items() if state == "FAILED"]
    if states.get(node_ids.VALIDATION_GATE) == "FAILED":
        return "stopped by data validation"
    if failed:
        return f"FAILED at {', '.join(failed)}"
    if any(state in ("running", "new") for state in states.values()):
        return "running (or killed)"
    if any(state == "canceled" for state in states.values()):
        return "canceled"
    if blessed is False:
        return "not blessed"
    return {
        NEW: "pushed",
        REUSED: "nothing new to push",
        REFUSED: "push refused",
    }.get(push, "not finished")


def _overall_auc(evaluation_uri: str) -> float | None:
    from components import evaluation_files

    try:
        overall = evaluation_files.metrics_by_slice(evaluation_uri).get(evaluation_files.OVERALL)
    except Exception:  # noqa: BLE001 - a run killed while writing: no metrics to show
        return None
    return None if not overall else overall.get("auc")


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
