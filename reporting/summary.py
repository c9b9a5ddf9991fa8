"""What a pipeline run did, read back from ML Metadata and its artifacts.

Every runner ends with this summary, so it reads only what any orchestrator
records: executions and artifacts in MLMD, and the files those artifacts point
to (statistics, anomalies, TFMA metrics and validation, the pushed model).
`python -m reporting.summary` prints it for the newest run in the configured
store (or `--run-id`), e.g. after an Airflow or another machine's run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from components import artifact_properties as props
from components import validation_files, validation_gate
from feedback import skew
from pipeline import node_ids
from reporting import queries
from settings import metadata
from settings.configs import PipelineConfig

# Slices smaller than this are too noisy to call the "worst" one.
MIN_SLICE_EXAMPLES = 50


@dataclasses.dataclass
class SliceMetric:
    slice_name: str
    value: float
    examples: int


@dataclasses.dataclass
class RunSummary:
    run_id: str | None
    nodes: dict[str, queries.NodeRun]
    split_rows: dict[str, int]
    window_spans: list[int]
    anomalies: dict[str, list[str]]
    validation_report: dict | None
    auc_overall: SliceMetric | None
    auc_worst_slice: SliceMetric | None
    blessed: bool | None
    blessing_reason: str
    pushed_path: str | None
    pushed_version: str | None
    push_reused_version: bool
    metadata_location: str
    # Why the Pusher refused a blessed model (components/idempotent_pusher.py).
    push_refused: str | None = None
    # The newest training/serving skew check (feedback/skew.py), if any: skew
    # is measured on traffic, on its own schedule, not by a run.
    serving_skew: skew.SkewResult | None = None

    def render(self) -> str:
        if not self.nodes:
            return f"No pipeline run recorded in ML Metadata ({self.metadata_location})."
        states = [n.state for n in self.nodes.values()]
        lines = [
            f"Run summary: run {self.run_id}, {len(states)} components "
            f"({states.count('finished')} ran, {states.count('cached')} cached"
            + (f", {states.count('FAILED')} FAILED" if "FAILED" in states else "")
            + ")"
        ]
        lines.append(
            "  components  "
            + ", ".join(
                f"{n.node_id} {n.seconds:.0f}s" + ("" if n.state == "finished" else f" ({n.state})")
                for n in self.nodes.values()
            )
        )
        if self.split_rows:
            lines.append(
                "  rows        "
                + ", ".join(f"{split} {rows:,}" for split, rows in self.split_rows.items())
            )
        if self.window_spans:
            lines.append(
                "  window      spans "
                + ", ".join(map(str, self.window_spans))
                + " (Transform and Trainer read them; the Evaluator their eval rows)"
            )
        if node_ids.EXAMPLE_VALIDATOR in self.nodes:
            if any(self.anomalies.values()):
                lines.append(
                    "  anomalies   "
                    + "; ".join(
                        f"{split}: {', '.join(found)}"
                        for split, found in self.anomalies.items()
                        if found
                    )
                )
            else:
                lines.append("  anomalies   none")
        gate = self.nodes.get(node_ids.VALIDATION_GATE)
        if gate is not None and gate.state == "FAILED":
            lines.append(
                "  validation  FAILED: bad data stopped the run before Transform; "
                "the previously pushed model stays the served one"
            )
        if self.validation_report is not None:
            lines.append("  drift       " + drift_text(self.validation_report))
        if self.auc_overall:
            text = (
                f"  eval AUC    {self.auc_overall.value:.3f} overall "
                f"({self.auc_overall.examples:,} examples)"
            )
            if self.auc_worst_slice:
                w = self.auc_worst_slice
                text += f"; worst slice {w.slice_name}: {w.value:.3f} ({w.examples:,} examples)"
            lines.append(text)
        if self.blessed is not None:
            lines.append(f"  blessed     {'yes' if self.blessed else 'NO'}: {self.blessing_reason}")
        if self.pushed_path and self.push_reused_version:
            lines.append(
                f"  pushed      nothing new: version {self.pushed_version} is this "
                f"same model ({self.pushed_path})"
            )
        elif self.pushed_path:
            lines.append(f"  pushed      {self.pushed_path} (version {self.pushed_version})")
        elif self.push_refused:
            lines.append(f"  pushed      nothing: {self.push_refused}")
        elif node_ids.PUSHER in self.nodes:
            # Read while the run goes on (another process's summary), the
            # Pusher may not have decided yet.
            pusher = self.nodes[node_ids.PUSHER].state
            if pusher in ("running", "new"):
                lines.append(f"  pushed      not yet: the Pusher is {pusher}")
            else:
                why = (
                    "the model was not blessed"
                    if pusher in ("finished", "cached")
                    else (f"the Pusher is {pusher}")
                )
                lines.append(
                    f"  pushed      nothing: {why}; the previously pushed model stays the "
                    "served one"
                )
        if self.serving_skew is not None:
            lines.append(
                f"  skew        {self.serving_skew.verdict()}; newest check: "
                f"{self.serving_skew.describe()}"
            )
        lines.append(f"  MLMD        {self.metadata_location}")
        return "\n".join(lines)


def split_names(artifact) -> list[str]:
    value = artifact.properties.get(props.SPLIT_NAMES) or artifact.custom_properties.get(
        props.SPLIT_NAMES
    )
    return validation_files.split_names(value.string_value if value else "")


def _split_rows(statistics) -> dict[str, int]:
    return {
        split: validation_files.num_examples(statistics.uri, split)
        for split in split_names(statistics)
    }


def _anomalies(anomalies_artifact) -> dict[str, list[str]]:
    return {
        split: [
            f"{a['feature']} ({a['anomaly']})"
            for a in validation_files.read_anomalies(anomalies_artifact.uri, split)
        ]
        for split in split_names(anomalies_artifact)
    }


# TFMA's model names in an evaluation with a baseline (pipeline/evaluation.py).
CANDIDATE, BASELINE = "candidate", "baseline"


def metrics_by_model(evaluation_uri: str) -> dict[str, dict[str, dict[str, float]]]:
    """{CANDIDATE or BASELINE: {slice name: {metric name: value}}}: every
    scalar metric TFMA wrote, per model and slice ("overall" for the whole
    eval set); change-vs-baseline entries are left out."""
    import tensorflow_model_analysis as tfma

    by_model: dict[str, dict[str, dict[str, float]]] = {}
    for metrics in tfma.load_metrics(evaluation_uri):
        slice_key = tfma.slicer.deserialize_slice_key(metrics.slice_key)
        slice_name = tfma.slicer.stringify_slice_key(slice_key) if slice_key else "overall"
        for entry in metrics.metric_keys_and_values:
            if entry.key.is_diff or not entry.value.HasField("double_value"):
                continue
            model = BASELINE if entry.key.model_name == BASELINE else CANDIDATE
            by_model.setdefault(model, {}).setdefault(slice_name, {})[entry.key.name] = (
                entry.value.double_value.value
            )
    return by_model


def metrics_by_slice(evaluation_uri: str) -> dict[str, dict[str, float]]:
    """{slice name: {metric name: value}} of the candidate model's scalar metrics.

    A plain structure (pandas.DataFrame(...).T renders it as a table) for
    viewers where TFMA's widgets do not render.
    """
    return metrics_by_model(evaluation_uri).get(CANDIDATE, {})


def _auc_by_slice(evaluation_uri: str) -> dict[str, SliceMetric]:
    return {
        name: SliceMetric(name, values["auc"], int(values.get("example_count", 0)))
        for name, values in metrics_by_slice(evaluation_uri).items()
        if "auc" in values
    }


def _blessing_reason(evaluation_uri: str, blessed: bool, has_baseline: bool) -> str:
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    if blessed:
        return (
            "passed the AUC floor and did not regress against the blessed baseline"
            if has_baseline
            else "passed the AUC floor (no blessed baseline yet)"
        )
    reasons = []
    for slice_validation in result.metric_validations_per_slice:
        for failure in slice_validation.failures:
            reasons.append(
                f"{failure.metric_key.name}"
                f"{' change vs baseline' if failure.metric_key.is_diff else ''}"
                f" = {failure.metric_value.double_value.value:.4f} "
                f"fails {_threshold_text(failure.metric_threshold)}"
            )
    return "; ".join(reasons) or "validation failed (see the Evaluator's validation result)"


def _threshold_text(threshold) -> str:
    if threshold.HasField("value_threshold"):
        return f"lower bound {threshold.value_threshold.lower_bound.value}"
    if threshold.HasField("change_threshold"):
        return f"no-regression bound {threshold.change_threshold.absolute.value}"
    return str(threshold).strip()


def drift_text(report: dict) -> str:
    baseline = report.get("drift_baseline")
    if baseline is None:
        return "not measured: no earlier span validated to compare with"
    against = f"vs the newest earlier span's statistics ({baseline['uri']})"
    if not report["drift"]:
        return f"none beyond the schema's thresholds {against}"
    effect = "blocking" if report["drift_blocks"] else "reported, not blocking"
    return f"{against}, {effect}: " + "; ".join(
        f"{d['feature']}: {d['detail']}" for d in report["drift"]
    )


def run_summary(
    config: PipelineConfig, connection_config=None, run_id: str | None = None
) -> RunSummary:
    """Summarizes the newest run of `config.pipeline_name` (or the run `run_id`):
    the newest execution of each of its components."""
    connection_config = connection_config or metadata.connection_config(config)
    run_id, nodes = queries.read_run(connection_config, config.pipeline_name, run_id)

    def output(node_id: str, key: str):
        node = nodes.get(node_id)
        return node.artifact(key) if node else None

    statistics = output(node_ids.STATISTICS_GEN, "statistics")
    anomalies = output(node_ids.EXAMPLE_VALIDATOR, "anomalies")
    validation = output(node_ids.VALIDATION_GATE, "validation")
    evaluation = output(node_ids.EVALUATOR, "evaluation")
    blessing = output(node_ids.EVALUATOR, "blessing")
    pushed = output(node_ids.PUSHER, "pushed_model")
    window = (
        nodes[node_ids.WINDOW_RESOLVER].outputs.get("examples", [])
        if node_ids.WINDOW_RESOLVER in nodes
        else []
    )

    auc_overall = auc_worst = None
    if evaluation is not None:
        by_slice = _auc_by_slice(evaluation.uri)
        auc_overall = by_slice.pop("overall", None)
        candidates = [m for m in by_slice.values() if m.examples >= MIN_SLICE_EXAMPLES]
        auc_worst = min(candidates, key=lambda m: m.value) if candidates else None

    blessed, reason = None, ""
    if blessing is not None:
        blessed = bool(blessing.custom_properties[props.BLESSED].int_value)
        has_baseline = props.BASELINE_MODEL_URI in blessing.custom_properties
        reason = _blessing_reason(evaluation.uri, blessed, has_baseline)

    pushed_path = pushed_version = None
    reused = False
    refused = queries.artifact_property(pushed, props.PUSH_REFUSED) if pushed else None
    if pushed is not None and pushed.custom_properties[props.PUSHED].int_value:
        pushed_path = pushed.custom_properties[props.PUSHED_DESTINATION].string_value
        pushed_version = pushed.custom_properties[props.PUSHED_VERSION].string_value
        # A cached Pusher's output is the push of the run that made it: this
        # run pushed nothing new either.
        reused = bool(pushed.custom_properties[props.REUSED_VERSION].int_value) or (
            node_ids.PUSHER in nodes and nodes[node_ids.PUSHER].state == "cached"
        )

    return RunSummary(
        run_id=run_id,
        nodes=nodes,
        split_rows=_split_rows(statistics) if statistics is not None else {},
        window_spans=sorted(
            {
                a.custom_properties[props.SPAN].int_value
                for a in window
                if props.SPAN in a.custom_properties
            },
            reverse=True,
        ),
        anomalies=_anomalies(anomalies) if anomalies is not None else {},
        validation_report=(
            validation_gate.read_report(validation.uri) if validation is not None else None
        ),
        auc_overall=auc_overall,
        auc_worst_slice=auc_worst,
        blessed=blessed,
        blessing_reason=reason,
        pushed_path=pushed_path,
        pushed_version=pushed_version,
        push_reused_version=reused,
        push_refused=refused,
        metadata_location=metadata.describe(config),
        serving_skew=skew.latest(config),
    )


def main(argv: Sequence[str] | None = None) -> int:
    from settings import configs

    parser = argparse.ArgumentParser(
        prog="python -m reporting.summary",
        description="Print what a run of the pipeline did (the newest, or --run-id), read "
        "from ML Metadata (the store the settings select: SQLite, MySQL with CFPB_MYSQL_*, "
        "or a gRPC metadata service with --metadata-grpc).",
    )
    parser.add_argument(
        "--run-id", help="the run to summarize (default: the newest; `run_history` lists them)"
    )
    config, args = configs.parse_args(parser, argv)
    try:
        summary = run_summary(config, run_id=args.run_id)
    except ValueError as error:  # an unknown run id
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary.render())
    return 0 if summary.nodes else 1


if __name__ == "__main__":
    sys.exit(main())
