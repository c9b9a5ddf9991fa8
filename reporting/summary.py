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
import json
import os
import sys
from collections.abc import Sequence

from components import artifact_properties as props
from components import (
    batch_scoring,
    evaluation_files,
    idempotent_pusher,
    validation_files,
    validation_gate,
)
from feedback import skew
from models import private_training
from pipeline import node_ids
from reporting import queries
from settings import code_version, metadata
from settings.configs import SPAN_SPEC, PipelineConfig


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
    # The model folder the Pusher writes and the version TF Serving serves
    # from it when the summary is read (None: nothing complete was pushed).
    serving_dir: str = ""
    served_version: str | None = None
    # The project's code the run ran (settings/code_version.py), if recorded.
    code_version: str | None = None
    # The trained model's privacy accounting (components/private_training.py):
    # None when it was trained without differential privacy.
    privacy: dict | None = None
    # What the trained model's training did (models.model.fit's record, on
    # the Model artifact): None for a model recorded before it was kept.
    training: dict | None = None
    # Batch scoring of the open complaints after the push
    # (components/batch_scoring.py): its record, and where scores.csv is.
    scoring: dict | None = None
    scores_path: str | None = None

    @property
    def scoring_text(self) -> str | None:
        """What batch scoring did, in one line (None before it ran)."""
        found = self.scoring
        if found is None:
            return None
        span = f"span {found.get('span')}"
        if found.get("skipped"):
            return f"nothing: {found['skipped']} (the open complaints of {span} wait)"
        text = (
            f"{found['scored']:,} open complaints of {span} with version {found['model_version']}"
        )
        if found["scored"]:
            p = found["percentiles"]
            top = found["top_decile"]
            text += (
                f"; probability median {p['50']:.3f} (10th-90th percentile "
                f"{p['10']:.3f}-{p['90']:.3f}); top decile: {top['complaints']:,} complaints "
                f"at {top['lowest_probability']:.3f} or more (mean {top['mean_probability']:.3f})"
            )
        if found["not_scorable"]:
            text += f"; {found['not_scorable']:,} still in progress, not scorable yet"
        return text

    @property
    def training_text(self) -> str | None:
        """Steps run, the step whose weights were kept and why (None: not recorded)."""
        found = self.training
        if not found:
            return None
        text = f"{found['steps']:,} steps"
        if found["kept_step"] < found["steps"]:
            text += (
                f", kept the weights of step {found['kept_step']:,}: the lowest validation "
                f"loss ({found['kept_validation_loss']:.4f}); later steps only overfit"
            )
        else:
            text += f", kept the last (validation loss {found['kept_validation_loss']:.4f})"
        calibration = found.get("calibration") or {}
        if "skipped" in calibration:
            text += f"; not calibrated: {calibration['skipped']}"
        elif calibration:
            text += (
                f"; calibrated on {calibration['rows']:,} validation rows (Platt: scale "
                f"{calibration['scale']:.2f}, shift {calibration['shift']:+.2f})"
            )
        return text

    @property
    def privacy_text(self) -> str | None:
        """The privacy line, once the run has a model (None before)."""
        trainer = self.nodes.get(node_ids.TRAINER)
        if trainer is None or trainer.artifact("model") is None:
            return None
        return private_training.describe(self.privacy)

    def served_text(self) -> str:
        """What is served, for a run that pushed nothing: read from the
        serving folder, never assumed (a new store has served nothing)."""
        if self.served_version is None:
            return f"no model has been pushed to {self.serving_dir}, so none is served"
        return f"version {self.served_version} in {self.serving_dir} stays the served one"

    @property
    def stopped_by_validation(self) -> bool:
        gate = self.nodes.get(node_ids.VALIDATION_GATE)
        return gate is not None and gate.state == "FAILED"

    @property
    def span(self) -> int | None:
        examples = self.nodes.get(node_ids.EXAMPLE_GEN)
        artifact = examples.artifact("examples") if examples else None
        return queries.artifact_property(artifact, props.SPAN) if artifact else None

    @property
    def schema_review(self) -> str | None:
        """The command that shows what accepting the refused span would
        change, as the gate recorded it (a failed gate publishes no output)."""
        gate = self.nodes.get(node_ids.VALIDATION_GATE)
        command = gate.properties.get("schema_review") if gate else None
        if not command or self.span is None:
            return None
        return command.replace(SPAN_SPEC, str(self.span))

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
        if self.stopped_by_validation:
            lines.append(
                "  validation  FAILED: bad data stopped the run before Transform; nothing was "
                f"trained or pushed; {self.served_text()}"
            )
            if self.schema_review:
                lines.append(f"  fix         {self.schema_review}  (if the new values are real)")
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
        if self.training_text:
            lines.append(f"  trained     {self.training_text}")
        if self.privacy_text:
            lines.append(f"  privacy     {self.privacy_text}")
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
                lines.append(f"  pushed      nothing: {why}; {self.served_text()}")
        if self.scoring_text:
            lines.append(f"  scored      {self.scoring_text}; {self.scores_path}")
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


def worst_slice(by_slice: dict[str, dict[str, float]]) -> SliceMetric | None:
    """The slice with the lowest AUC among those that can be scored."""
    scored = [
        SliceMetric(name, values["auc"], evaluation_files.rows(values))
        for name, values in by_slice.items()
        if name != evaluation_files.OVERALL and evaluation_files.unscorable(values) is None
    ]
    return min(scored, key=lambda m: m.value) if scored else None


def _blessing_reason(
    evaluation_uri: str, blessed: bool, has_baseline: bool, privacy_refused: str | None
) -> str:
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    if blessed:
        return (
            "passed the AUC floor and did not regress against the blessed baseline"
            if has_baseline
            else "passed the AUC floor (no blessed baseline yet)"
        )
    # The privacy budget first: it refuses a model whatever its metrics.
    reasons = [privacy_refused] if privacy_refused else []
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


def _privacy(model) -> dict | None:
    """The accounting recorded on the run's Model (an MLMD proto here)."""
    if model is None:
        return None
    return private_training.parse_accounting(
        queries.artifact_property(model, props.PRIVACY_ACCOUNTING)
    )


def _training(model) -> dict | None:
    """What training did, as recorded on the run's Model (an MLMD proto here)."""
    text = queries.artifact_property(model, props.TRAINING) if model is not None else None
    return json.loads(text) if text else None


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
    trained = output(node_ids.TRAINER, "model")
    scores = output(node_ids.SCORED_COMPLAINTS, "scores")
    scoring = queries.artifact_property(scores, batch_scoring.SCORING_PROPERTY) if scores else None
    window = (
        nodes[node_ids.WINDOW_RESOLVER].outputs.get("examples", [])
        if node_ids.WINDOW_RESOLVER in nodes
        else []
    )

    auc_overall = auc_worst = None
    if evaluation is not None:
        by_slice = evaluation_files.metrics_by_slice(evaluation.uri)
        overall = by_slice.get(evaluation_files.OVERALL, {})
        if "auc" in overall:
            auc_overall = SliceMetric("overall", overall["auc"], evaluation_files.rows(overall))
        auc_worst = worst_slice(by_slice)

    blessed, reason = None, ""
    if blessing is not None:
        blessed = bool(blessing.custom_properties[props.BLESSED].int_value)
        has_baseline = props.BASELINE_MODEL_URI in blessing.custom_properties
        reason = _blessing_reason(
            evaluation.uri,
            blessed,
            has_baseline,
            queries.artifact_property(blessing, props.PRIVACY_REFUSED),
        )

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
        serving_dir=config.model_dir,
        served_version=idempotent_pusher.newest_version(config.model_dir),
        code_version=queries.run_property(connection_config, run_id, code_version.PROPERTY),
        privacy=_privacy(trained),
        training=_training(trained),
        scoring=json.loads(scoring) if scoring else None,
        scores_path=os.path.join(scores.uri, batch_scoring.SCORES_FILE) if scores else None,
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
