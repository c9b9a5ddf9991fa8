"""What one pipeline run looks like in MLflow, derived from its report.

ML Metadata stays the truth; this is the same run in MLflow's terms, built
from what the run report reads (reporting/report.py), so MLflow shows the
numbers the report and the summary show: parameters are the settings the
run's components recorded, metrics its evaluation (overall and per slice),
rows per split, drift distances, component durations and epsilon; files are
the small artifacts a reader opens (the report, the schema, the anomalies, the
model card), and the large ones (examples, models) are linked by URI as tags.
No MLflow import here: tracking/mlflow_mirror.py sends a record.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

from components import evaluation_files
from pipeline import node_ids
from reporting.report import Report

# The tag that names a run's pipeline run id: the mirror's key (one MLflow
# run per pipeline run), and on a model version the run that pushed it.
PIPELINE_RUN_ID = "pipeline_run_id"
# Set last, when every part of a run is in MLflow: a run without it was cut
# off mid-mirror and is mirrored again.
MIRROR_COMPLETE = "mirror_complete"
# The executions that are not over: their run is mirrored when they are.
UNFINISHED_STATES = ("RUNNING", "NEW", "unknown")

# MLflow's rule for metric and parameter names (mlflow/utils/validation.py,
# validate_param_and_metric_name): letters, digits, _ - . space : /.
_NOT_IN_A_NAME = re.compile(r"[^\w.\- :/]+")
# Large artifacts: linked by URI, never copied.
_LINKED_OUTPUTS = (
    (node_ids.EXAMPLE_GEN, "examples"),
    (node_ids.STATISTICS_GEN, "statistics"),
    (node_ids.TRANSFORM, "transform_graph"),
    (node_ids.TRAINER, "model"),
    (node_ids.EVALUATOR, "evaluation"),
)


def name(*parts: str) -> str:
    """A metric or parameter name MLflow accepts, from readable parts:
    characters it refuses become '_' ("product:Payday loan, title loan"
    -> "product:Payday loan_ title loan"), parts are joined by '/'."""
    cleaned = [_NOT_IN_A_NAME.sub("_", part).strip() for part in parts]
    return "/".join(p.strip("/") for p in cleaned if p)


def param_name(label: str) -> str:
    """A report setting's label as a parameter name a filter can type:
    "privacy budget (max epsilon)" -> "privacy_budget_max_epsilon"."""
    return "_".join(_NOT_IN_A_NAME.sub(" ", label).split())


@dataclasses.dataclass
class RunRecord:
    run_id: str
    start_ms: int
    end_ms: int
    status: str  # MLflow's: FINISHED or FAILED
    description: str  # the run summary, shown as the MLflow run's description
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    # {folder in the MLflow run's artifacts: location of a file to copy}
    files: dict[str, str]
    pushed_version: str | None  # a new TF Serving version this run pushed
    pushed_path: str | None


def is_over(report: Report) -> bool:
    """Whether every execution of the run has ended (a run still going, or
    cut off before ML Metadata heard its end, is not mirrored yet)."""
    return bool(report.run.nodes) and not any(
        node.state in UNFINISHED_STATES for node in report.run.nodes.values()
    )


def record(report: Report, page: str, context_id: int | None) -> RunRecord:
    """The MLflow form of a finished run: `page` is its report, `context_id`
    its `pipeline_run` context's id in ML Metadata."""
    run = report.run
    assert run.run_id is not None, "a record needs a pipeline run"
    nodes = run.nodes.values()
    start = min(n.started for n in nodes)
    end = max(n.started + n.seconds for n in nodes)
    failed = any(n.state == "FAILED" for n in nodes)
    tags = {
        PIPELINE_RUN_ID: run.run_id,
        "pipeline_name": report.config.pipeline_name,
        "mlmd.pipeline_run_context_id": str(context_id),
        "mlmd.execution_ids": json.dumps(
            {n.node_id: n.execution_id for n in nodes}, sort_keys=True
        ),
        "mlmd.location": run.metadata_location,
        "code_version": run.code_version or "not recorded",
        "blessed": {None: "not reached", True: "yes", False: "no"}[run.blessed],
    }
    if run.blessing_reason:
        tags["blessing_reason"] = run.blessing_reason
    if run.pushed_path:
        tags["pushed_version"] = str(run.pushed_version)
    for node_id, key in _LINKED_OUTPUTS:
        node = run.nodes.get(node_id)
        artifact = node.artifact(key) if node else None
        if artifact is not None:
            tags[f"artifact_uri.{key}"] = artifact.uri
    if run.pushed_path:
        tags["artifact_uri.pushed_model"] = run.pushed_path
    return RunRecord(
        run_id=run.run_id,
        start_ms=int(start * 1000),
        end_ms=int(end * 1000),
        status="FAILED" if failed else "FINISHED",
        description=run.render(),
        tags=tags,
        params={param_name(label): value for label, value in report.settings},
        metrics=metrics(report),
        files=files(report, page),
        pushed_version=None if run.push_reused_version else run.pushed_version,
        pushed_path=run.pushed_path,
    )


def metrics(report: Report) -> dict[str, float]:
    """Every number a run comparison wants, under stable names."""
    run = report.run
    found: dict[str, float] = {}
    candidate = report.metrics.get(evaluation_files.CANDIDATE, {})
    for slice_name, values in candidate.items():
        scorable = evaluation_files.unscorable(values) is None
        for metric, value in values.items():
            # A slice too small to score keeps its row count, not a noisy AUC.
            if (scorable or metric == "example_count") and math.isfinite(value):
                found[name("eval", slice_name, metric)] = value
    for split, rows in run.split_rows.items():
        found[name("rows", split)] = float(rows)
    for feature in report.features:
        if feature.drift is not None:
            found[name("drift", feature.name)] = feature.drift
    for node in run.nodes.values():
        found[name("seconds", node.node_id)] = node.seconds
    if run.privacy:
        found["privacy/epsilon"] = float(run.privacy["epsilon"])
    return found


def files(report: Report, page: str) -> dict[str, str]:
    """{artifact folder: file location}: the small files a reader opens."""
    found = {"report": page}
    run = report.run
    for node_id in node_ids.SCHEMA_NODES:
        node = run.nodes.get(node_id)
        schema = node.artifact("schema") if node else None
        if schema is not None:
            found["schema"] = f"{schema.uri}/schema.pbtxt"
            break
    if report.model_card:
        found["model_card"] = report.model_card
    return found


def anomalies_json(report: Report) -> str:
    """The anomalies the run found (split, feature, anomaly, detail), as
    the report lists them: an empty list when there were none."""
    return json.dumps(report.anomalies, indent=2, sort_keys=True)
