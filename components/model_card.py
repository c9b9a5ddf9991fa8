"""The model card every pushed version carries, in its `assets.extra/`
(the SavedModel folder TF Serving copies along and never loads): the card
as JSON (`model_card.json`) for tools, and as a page (`model_card.html`).

Fields follow Model Card Toolkit's schema (TFX's model cards, schema
v0.0.2: model_details, model_parameters, quantitative_analysis,
considerations; a metric's `confidence_interval` as in its model_card.proto).
The toolkit itself does not install beside TFX 1.16 (its releases pin
TFMA 0.2x-0.3x), so the card is built here and rendered with Jinja2 from
`model_card.html.j2`.

Confidence intervals (95%) are computed from the eval counts TFMA wrote,
without re-evaluating: AUC by Hanley & McNeil (1982), "The meaning and use
of the area under a ROC curve", Radiology 143(1), eq. 2; precision, recall
and accuracy by Wilson's score interval (1927).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from components import evaluation_files
from data import prepare
from models import features

SCHEMA_VERSION = "0.0.2"
FOLDER = "assets.extra"
JSON_NAME, HTML_NAME = "model_card.json", "model_card.html"
Z_95 = 1.959964


def card_location(version_path: str, name: str = HTML_NAME) -> str:
    return os.path.join(version_path, FOLDER, name)


def wilson_interval(successes: float, trials: float, z: float = Z_95) -> tuple[float, float]:
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    scale = 1 + z * z / trials
    return (max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale))


def auc_interval(
    auc: float, positives: float, negatives: float, z: float = Z_95
) -> tuple[float, float]:
    """Hanley & McNeil's standard error of an AUC from the class counts."""
    if positives <= 0 or negatives <= 0:
        return (0.0, 1.0)
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    error = math.sqrt(max(variance, 0.0))
    return (max(0.0, auc - z * error), min(1.0, auc + z * error))


def performance_metrics(slice_name: str, values: dict[str, float]) -> list[dict[str, Any]]:
    """A slice's metrics with 95% intervals, in the toolkit's fields; none
    for a slice that cannot be scored (too small, one class)."""
    if evaluation_files.unscorable(values) is not None:
        return []
    matrix = evaluation_files.confusion_matrix(values)
    count = values["example_count"]
    found: list[dict[str, Any]] = []

    def metric(kind: str, value: float, interval: tuple[float, float] | None) -> None:
        entry: dict[str, Any] = {"type": kind, "value": round(value, 4), "slice": slice_name}
        if interval is not None:
            entry["confidence_interval"] = {
                "lower_bound": round(interval[0], 4),
                "upper_bound": round(interval[1], 4),
            }
        found.append(entry)

    metric("example_count", count, None)
    if matrix is not None:
        negatives = matrix.false_positives + matrix.true_negatives
        metric("auc", values["auc"], auc_interval(values["auc"], matrix.positives, negatives))
        metric("share_disputed", values["mean_label"], None)
        metric(
            "precision",
            values["precision"],
            wilson_interval(matrix.true_positives, matrix.predicted_positives),
        )
        metric("recall", values["recall"], wilson_interval(matrix.true_positives, matrix.positives))
        if "binary_accuracy" in values:
            metric(
                "accuracy",
                values["binary_accuracy"],
                wilson_interval(values["binary_accuracy"] * count, count),
            )
    else:
        metric("auc", values["auc"], None)
    return found


def label_rule() -> str:
    return (
        f"{features.LABEL_KEY} is 1 when the consumer disputed the company's response "
        f"('{prepare.DISPUTED}'), 0 when not ('{prepare.NOT_DISPUTED}' or empty), once the "
        f"outcome is final; complaints whose response is still open "
        f"({', '.join(prepare.OPEN_RESPONSES)}) and those received within "
        f"{prepare.OUTCOME_FINAL_AFTER_DAYS} days of their export's newest complaint (the "
        "consumer may still dispute) are left out."
    )


def build(
    *,
    model_name: str,
    version: str,
    date: str,
    metrics: dict[str, dict[str, float]],
    spans: list[int],
    data_location: str,
    blessed: bool,
    baseline: str | None,
    thresholds: dict[str, float],
    code_version: str,
    privacy: str | None = None,
) -> dict[str, Any]:
    """The card of one pushed version. `metrics`: the candidate's
    {slice name: {metric: value}} (components/evaluation_files.py);
    `thresholds`: {"min_auc", "max_auc_regression", "decision_threshold"},
    each stated only if given."""
    overall = metrics.get(evaluation_files.OVERALL, {})
    # Overall first, then the slices by name.
    scored = [
        m
        for name in sorted(metrics, key=lambda n: (n != evaluation_files.OVERALL, n))
        for m in performance_metrics(name, metrics[name])
    ]
    unscored = sorted(
        (name, evaluation_files.rows(values))
        for name, values in metrics.items()
        if name != evaluation_files.OVERALL and evaluation_files.unscorable(values) is not None
    )
    window = ", ".join(map(str, sorted(spans))) or "unknown"
    floor = thresholds.get("min_auc")
    drop = thresholds.get("max_auc_regression")
    operating = thresholds.get("decision_threshold")
    decision = "Not blessed"
    if blessed:
        decision = (
            f"Blessed: AUC {overall.get('auc', float('nan')):.4f} on "
            f"{evaluation_files.rows(overall):,} eval rows passed the floor"
            + (f" {floor:g}" if floor is not None else "")
            + (
                f" and did not drop more than {drop or 0:g} below the model served before "
                f"({baseline})"
                if baseline
                else " (no model was served before: no baseline to compare with)"
            )
        )
    at = f"threshold {operating:g}" if operating is not None else "the operating threshold"
    limitations = [
        "Trained on CFPB complaints of spans (YYYYMMDD, the newest complaint of each "
        f"export) {window} only: products, issues and states that appeared later map to "
        "one shared out-of-vocabulary index, and the model has never seen them.",
        "Meant to be asked once the company has responded. Never trained on complaints "
        f"whose company response is still open ({', '.join(prepare.OPEN_RESPONSES)}): its "
        "output for them is an extrapolation.",
        "Evaluated on held-out rows of the same spans (a hash split), not on later months: "
        "a later month can differ (the run report measures each new span's drift).",
    ]
    if unscored:
        limitations.append(
            f"Not evaluated on these slices (under {evaluation_files.MIN_SLICE_EXAMPLES} eval "
            "rows, or one class only): "
            + "; ".join(f"{name} ({count:,} rows)" for name, count in unscored)
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "model_details": {
            "name": model_name,
            "overview": (
                "Estimates the probability that a consumer disputes the company's response "
                "to a CFPB complaint, from the fields of the complaint named under Input."
            ),
            "documentation": f"Label rule: {label_rule()} Blessing: {decision}.",
            "version": {"name": version, "date": date, "diff": f"code {code_version}"},
            "references": [
                {"reference": "https://www.consumerfinance.gov/data-research/consumer-complaints/"}
            ],
        },
        "model_parameters": {
            "model_architecture": (
                "Keras network (the book's tabular model, models/model.py): small "
                "categoricals one-hot, larger ones embedded, ZIP buckets one-hot, dense ReLU "
                "layers and a sigmoid output; inputs mapped by tf.Transform vocabularies"
            ),
            "data": [
                {
                    "name": f"CFPB consumer complaints, spans {window}",
                    "description": f"Prepared spans at {data_location}; hash-split into "
                    "train/eval/test; the metrics below are on the eval rows of every span "
                    "in the window.",
                }
            ],
            "input_format": (
                "tf.Example with the raw features "
                + ", ".join(features.RAW_INPUT_NAMES)
                + " (serving signatures in models/signatures.py)"
            ),
            "output_format": "probability of a dispute (0-1), and the classify API's classes "
            + " / ".join(features.LABEL_CLASSES),
        },
        "quantitative_analysis": {"performance_metrics": scored},
        "considerations": {
            "users": [
                {"description": "Complaint-handling teams prioritising which responses to review."}
            ],
            "use_cases": [
                {
                    "description": "Ranking answered complaints by the chance that the consumer "
                    f"disputes the response (flagged from {at})."
                }
            ],
            "limitations": [{"description": text} for text in limitations],
            "tradeoffs": [
                {
                    "description": f"At {at} the model flags more complaints than dispute (recall over precision); a higher "
                    "threshold flags fewer and misses more disputes."
                }
            ],
            "ethical_considerations": [
                {
                    "name": "Decisions about a consumer",
                    "mitigation_strategy": "Not for them: it predicts a dispute, not whether a "
                    "complaint is justified, and state and ZIP code, among its inputs, can stand "
                    "in for protected attributes. Use it to order work only, and read the "
                    "per-state metrics before using it in a region.",
                },
                {
                    "name": "Privacy",
                    "mitigation_strategy": privacy
                    or "Trained without differential privacy: no formal privacy guarantee.",
                },
            ],
        },
    }


def render_html(card: dict[str, Any]) -> str:
    """The card as a self-contained page (no script, no network)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.dirname(__file__)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    slices: dict[str, dict[str, Any]] = {}
    for metric in card["quantitative_analysis"]["performance_metrics"]:
        slices.setdefault(metric["slice"], {})[metric["type"]] = metric
    return environment.get_template("model_card.html.j2").render(card=card, slices=slices)


def write(card: dict[str, Any], version_path: str) -> None:
    """Both files into `<version_path>/assets.extra/` (local or a bucket)."""
    from tfx.dsl.io import fileio

    folder = os.path.join(version_path, FOLDER)
    fileio.makedirs(folder)
    with fileio.open(os.path.join(folder, JSON_NAME), "w") as f:
        f.write(json.dumps(card, indent=2))
    with fileio.open(os.path.join(folder, HTML_NAME), "w") as f:
        f.write(render_html(card))
