"""What the Evaluator wrote (TFMA's metrics), read per model and slice.

The run summary, the run report and the model card the Pusher writes all read
metrics here, so all three name the same slices, call the same slices too
small to score, and count the same confusion matrix.
"""

from __future__ import annotations

import dataclasses
import math

# TFMA's model names in an evaluation with a baseline (pipeline/evaluation.py).
CANDIDATE, BASELINE = "candidate", "baseline"
OVERALL = "overall"

# Slices smaller than this are too noisy to score (or to call the "worst").
MIN_SLICE_EXAMPLES = 50


def metrics_by_model(evaluation_uri: str) -> dict[str, dict[str, dict[str, float]]]:
    """{CANDIDATE or BASELINE: {slice name: {metric name: value}}}: every
    scalar metric TFMA wrote, per model and slice (OVERALL for the whole
    eval set, "product:Mortgage" for a slice); change-vs-baseline entries
    are left out."""
    import tensorflow_model_analysis as tfma

    by_model: dict[str, dict[str, dict[str, float]]] = {}
    for metrics in tfma.load_metrics(evaluation_uri):
        slice_key = tfma.slicer.deserialize_slice_key(metrics.slice_key)
        slice_name = tfma.slicer.stringify_slice_key(slice_key) if slice_key else OVERALL
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


def rows(values: dict[str, float]) -> int:
    return int(round(values.get("example_count", 0)))


def unscorable(values: dict[str, float]) -> str | None:
    """Why a slice's AUC means nothing, or None when it can be read: too few
    rows, or one class only (TFMA then writes AUC 0 or NaN, not a score)."""
    count = rows(values)
    if count < MIN_SLICE_EXAMPLES:
        return f"{count:,} rows: too few to score (under {MIN_SLICE_EXAMPLES})"
    base_rate = values.get("mean_label")
    if base_rate is not None and not 0 < base_rate < 1:
        return (
            f"{count:,} rows, all {'disputed' if base_rate >= 1 else 'not disputed'}: AUC undefined"
        )
    auc = values.get("auc")
    if auc is None or math.isnan(auc):
        return f"{count:,} rows: AUC not computed"
    return None


@dataclasses.dataclass
class ConfusionMatrix:
    """Counts of eval rows at the operating threshold (predicted disputed
    when the probability is at least the threshold)."""

    true_positives: float
    false_positives: float
    false_negatives: float
    true_negatives: float

    @property
    def positives(self) -> float:
        return self.true_positives + self.false_negatives

    @property
    def predicted_positives(self) -> float:
        return self.true_positives + self.false_positives


def confusion_matrix(values: dict[str, float]) -> ConfusionMatrix | None:
    """The operating threshold's confusion matrix, from the metrics TFMA
    wrote at it (rows, share disputed, precision, recall): the counts that
    give those rates; None if one of them is missing."""
    needed = ("example_count", "mean_label", "precision", "recall")
    if any(values.get(name) is None or math.isnan(values[name]) for name in needed):
        return None
    count = values["example_count"]
    positives = values["mean_label"] * count
    true_positives = values["recall"] * positives
    predicted = true_positives / values["precision"] if values["precision"] > 0 else 0.0
    false_positives = predicted - true_positives
    return ConfusionMatrix(
        true_positives=round(true_positives),
        false_positives=round(false_positives),
        false_negatives=round(positives - true_positives),
        true_negatives=round(count - positives - false_positives),
    )
