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
        if not pushed:
            push = "-"
        elif queries.artifact_property(pushed[0], props.PUSH_REFUSED):
            push = "refused: another run pushed since the comparison"
        elif not queries.artifact_property(pushed[0], props.PUSHED):
            push = "nothing"
        else:
            version = store.version_names[
                queries.artifact_property(pushed[0], props.PUSHED_VERSION)
            ]
            push = (
                f"nothing new ({version} is this model)"
                if queries.artifact_property(pushed[0], props.REUSED_VERSION)
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
                blessed=bool(queries.artifact_property(blessing[0], props.BLESSED))
                if blessing
                else None,
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
