"""The run report: one self-contained HTML page per run, and an index of runs.

    python -m reporting.report                       # the newest run of the configured store
    python -m reporting.report --output-dir DIR      # default build/reports/<pipeline_name>
    python -m reporting.report --run-id RUN_ID       # an earlier run (see the index)


Read from ML Metadata and the run's artifacts (any store the config selects,
any runner's records) into a `Report` here; drawn as HTML by
reporting/pages.py, written as `<run id>.html` next to `index.html`. Every
chart is inline SVG and the styles are inline: the page needs no network and
no script. What it shows:

- the run at a glance: spans, rows per split, each component with its time and
  state, and the verdict (pushed, not blessed and why, or stopped by data);
- data: per feature, the train split's top values (or the ZIP histogram) next
  to the drift baseline's, the drift distance against the schema's threshold,
  and the share of empty values; anomalies with their description;
- model: metrics overall and per slice with example counts, ROC and
  precision-recall curves, calibration, precision and recall at the operating
  threshold (`--decision-threshold`), the candidate next to the baseline it
  was compared with;
- lineage: export -> span -> examples -> transform graph -> model -> blessing
  -> pushed version, with ML Metadata ids and URIs;
- what changed since the previous run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence

from components import artifact_properties as props
from components import evaluation_files, model_card, validation_files
from data import prepare, storage
from data.storage import Location
from models import features, private_training
from pipeline import node_ids
from reporting import pages, run_history, summary
from settings import metadata
from settings.configs import PipelineConfig

TOP_VALUES = 8
BASELINE = evaluation_files.BASELINE


@dataclasses.dataclass
class FeatureView:
    name: str
    kind: str  # "categorical" or "numeric"
    # [(value, share of rows)] for this span and for the drift baseline
    values: list[tuple[str, float]]
    baseline_values: list[tuple[str, float]]
    empty_share: float
    drift: float | None = None
    drift_threshold: float | None = None
    drift_kind: str = ""


@dataclasses.dataclass
class Curve:
    name: str
    points: list[tuple[float, float]]
    # The point at the operating (decision) threshold, drawn and labeled.
    operating_point: tuple[float, float] | None = None


@dataclasses.dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    curves: list[Curve]
    diagonal: bool = False  # the chance line (ROC) or perfect calibration
    base_rate: float | None = None  # precision of flagging every complaint


@dataclasses.dataclass
class Report:
    config: PipelineConfig
    run: summary.RunSummary
    features: list[FeatureView]
    anomalies: list[dict]  # split, feature, anomaly, detail
    metrics: dict[str, dict[str, dict[str, float]]]  # model -> slice -> metric -> value
    charts: list[Chart]
    lineage: list[tuple[str, str]]
    history: list[run_history.RunDecisions]  # the store's runs up to this one
    store_history: list[run_history.RunDecisions]  # every run the store holds
    statistics_uri: str | None = None
    previous: summary.RunSummary | None = None  # the run before this one, if any
    # The run's settings as its executions recorded them: (name, value).
    settings: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    # The pushed version's model card, when the version has one (versions
    # pushed before cards were written have none).
    model_card: str | None = None

    @property
    def auc_floor(self) -> str | None:
        """The blessing metric's floor as the Evaluator recorded it."""
        from pipeline import evaluation  # TFMA: loaded anyway where a report is drawn

        return dict(self.settings).get(floor_setting(evaluation.BLESSING_METRIC))


def _statistics_view(statistics, baseline, schema, drift_info) -> list[FeatureView]:
    def by_name(dataset):
        return {f.path.step[0]: f for f in dataset.features} if dataset else {}

    current = by_name(statistics.datasets[0] if statistics.datasets else None)
    previous = by_name(baseline.datasets[0] if baseline and baseline.datasets else None)
    rows = statistics.datasets[0].num_examples if statistics.datasets else 0
    views = []
    for name in (*features.RAW_INPUT_NAMES, features.LABEL_KEY):
        # A date's distribution is the span's calendar, not something to review.
        if name not in current or name in features.DATE_INPUT_NAMES:
            continue
        stats = current[name]
        kind = "numeric" if stats.HasField("num_stats") else "categorical"
        common = (
            stats.num_stats.common_stats if kind == "numeric" else stats.string_stats.common_stats
        )
        empty = 1.0 - common.tot_num_values / rows if rows else 0.0
        view = FeatureView(
            name,
            kind,
            _distribution(stats, rows),
            _distribution(previous[name], _rows(baseline)) if name in previous else [],
            max(empty, 0.0),
        )
        for measurement in drift_info.get(name, []):
            view.drift, view.drift_threshold, view.drift_kind = measurement
        views.append(view)
    return views


def feature_table(
    statistics_uri: str,
    baseline_uri: str | None = None,
    schema_uri: str | None = None,
    split: str = "train",
) -> list[FeatureView]:
    """Each feature's distribution in one split of a statistics artifact, next
    to a baseline's and with the drift the schema's comparators measure."""
    import tensorflow_data_validation as tfdv

    statistics = validation_files.read_statistics(statistics_uri, split)
    baseline = validation_files.read_statistics(baseline_uri, split) if baseline_uri else None
    schema = tfdv.load_schema_text(os.path.join(schema_uri, "schema.pbtxt")) if schema_uri else None
    return _statistics_view(
        statistics, baseline, schema, _drift_measurements(statistics, baseline, schema)
    )


def _rows(statistics) -> int:
    return statistics.datasets[0].num_examples if statistics and statistics.datasets else 0


def _distribution(stats, rows: int) -> list[tuple[str, float]]:
    if not rows:
        return []
    if stats.path.step[0] == features.LABEL_KEY:  # 0/1: the share of disputes says it all
        disputed = stats.num_stats.mean
        return [("not disputed (0)", 1 - disputed), ("disputed (1)", disputed)]
    if stats.HasField("string_stats"):
        top = stats.string_stats.top_values[:TOP_VALUES]
        return [(v.value or "(empty)", v.frequency / rows) for v in top]
    histograms = [h for h in stats.num_stats.histograms if h.type == h.STANDARD]
    if not histograms:
        return []
    return [
        (f"{b.low_value:,.0f}-{b.high_value:,.0f}", b.sample_count / rows)
        for b in histograms[0].buckets
    ]


def _drift_measurements(statistics, baseline, schema) -> dict[str, list[tuple[float, float, str]]]:
    """{feature: [(distance, threshold, kind)]} for every feature with a comparator."""
    import tensorflow_data_validation as tfdv

    if baseline is None or schema is None:
        return {}
    result = tfdv.validate_statistics(statistics, schema, previous_statistics=baseline)
    measured: dict[str, list[tuple[float, float, str]]] = {}
    for info in result.drift_skew_info:
        name = info.path.step[0]
        for m in info.drift_measurements:
            kind = "L-infinity" if m.type == m.L_INFTY else "Jensen-Shannon"
            measured.setdefault(name, []).append((m.value, m.threshold, kind))
    return measured


def _charts(evaluation_uri: str, threshold: float, base_rate: float | None) -> list[Chart]:
    """ROC, precision-recall and calibration of the overall slice, per model,
    each with its point at the operating threshold."""
    import tensorflow_model_analysis as tfma

    roc, pr, calibration = [], [], []
    for plots in tfma.load_plots(evaluation_uri):
        if plots.slice_key.single_slice_keys:
            continue  # overall only
        for entry in plots.plot_keys_and_values:
            model = BASELINE if entry.key.model_name == BASELINE else evaluation_files.CANDIDATE
            value = entry.value
            if value.HasField("confusion_matrix_at_thresholds"):
                matrices = value.confusion_matrix_at_thresholds.matrices
                at = min(matrices, key=lambda m: abs(m.threshold - threshold), default=None)

                def fpr(m):
                    return m.false_positives / max(m.false_positives + m.true_negatives, 1)

                roc.append(
                    Curve(
                        model,
                        sorted((fpr(m), m.recall) for m in matrices),
                        (fpr(at), at.recall) if at else None,
                    )
                )
                pr.append(
                    Curve(
                        model,
                        sorted((m.recall, m.precision) for m in matrices if m.precision > 0),
                        (at.recall, at.precision) if at else None,
                    )
                )
            if value.HasField("calibration_histogram_buckets"):
                calibration.append(Curve(model, _calibration_points(value)))
    charts = []
    if roc:
        charts.append(
            Chart("ROC curve", "false positive rate", "true positive rate (recall)", roc, True)
        )
    if pr:
        charts.append(
            Chart("Precision against recall", "recall", "precision", pr, base_rate=base_rate)
        )
    if calibration:
        charts.append(
            Chart(
                "Calibration (bins of 20+ rows)",
                "mean predicted probability",
                "share disputed",
                calibration,
                True,
            )
        )
    return charts


def _calibration_points(value, bins: int = 20, min_rows: int = 20) -> list[tuple[float, float]]:
    """(mean prediction, share disputed) per equal-width bin of predictions
    holding at least `min_rows` rows (TFMA's 10,000 buckets hold a few each)."""
    sums: dict[int, list[float]] = {}
    for bucket in value.calibration_histogram_buckets.buckets:
        rows = bucket.num_weighted_examples.value
        if rows <= 0:
            continue
        prediction = bucket.total_weighted_refined_prediction.value / rows
        bin_sums = sums.setdefault(min(int(prediction * bins), bins - 1), [0.0, 0.0, 0.0])
        bin_sums[0] += rows
        bin_sums[1] += bucket.total_weighted_refined_prediction.value
        bin_sums[2] += bucket.total_weighted_label.value
    return [
        (predicted / rows, disputed / rows)
        for _, (rows, predicted, disputed) in sorted(sums.items())
        if rows >= min_rows
    ]


def _uri_line(artifact) -> str:
    return f"id {artifact.id}: {artifact.uri}"


def _lineage(run: summary.RunSummary, config: PipelineConfig) -> list[tuple[str, str]]:
    steps = []
    examples = run.nodes.get(node_ids.EXAMPLE_GEN)
    example_artifact = examples.artifact("examples") if examples else None
    if example_artifact is not None:
        span = example_artifact.custom_properties[props.SPAN].int_value
        # The data root may be a gs:// URI: data/storage.py reads either.
        span_folder = prepare.span_dir(storage.location(config.data_root), span)
        try:
            prepared = prepare.read_span_report(span_folder)
            source = (
                f"{prepared.source} (sha256 {prepared.source_sha256[:12]}...)"
                if prepared
                else "(no preparation report)"
            )
        except prepare.PreparationError as error:
            source = f"(unreadable: {error})"
        steps.append(("raw export", source))
        steps.append(("span", f"{span} ({span_folder})"))
        steps.append(("examples", _uri_line(example_artifact)))
    if run.window_spans:
        steps.append(("training window", "spans " + ", ".join(map(str, run.window_spans))))
    for node_id, key, label in (
        (node_ids.TRANSFORM, "transform_graph", "transform graph"),
        (node_ids.TRAINER, "model", "model"),
        (node_ids.EVALUATOR, "blessing", "blessing"),
        (node_ids.PUSHER, "pushed_model", "push record"),
    ):
        node = run.nodes.get(node_id)
        artifact = node.artifact(key) if node else None
        if artifact is not None:
            steps.append((label, _uri_line(artifact)))
    if run.pushed_path:
        steps.append(("served version", f"{run.pushed_version} at {run.pushed_path}"))
    return steps


def run_settings(run: summary.RunSummary) -> list[tuple[str, str]]:
    """What the run's executions recorded of its settings (not today's
    config: an earlier run may have used others)."""
    settings = []

    def recorded(node_id: str, name: str) -> str | None:
        node = run.nodes.get(node_id)
        return node.properties.get(name) if node else None

    if data_root := recorded(node_ids.EXAMPLE_GEN, "input_base"):
        settings.append(("data root", data_root))
    for name in ("train_args", "eval_args"):
        if text := recorded(node_ids.TRAINER, name):
            settings.append(
                (name.replace("_", " ") + " (steps)", str(json.loads(text).get("num_steps")))
            )
    if text := recorded(node_ids.TRAINER, "custom_config"):
        custom = json.loads(text)
        dp_sgd = custom.pop(private_training.PRIVATE_TRAINING_KEY, None)
        settings += [(name.replace("_", " "), str(v)) for name, v in sorted(custom.items())]
        settings.append(("private training", private_training.settings_text(dp_sgd)))
    if run.training_text:
        settings.append(("training", run.training_text))
    if text := recorded(node_ids.EVALUATOR, "eval_config"):
        settings += evaluation_settings(json.loads(text))
    budget = recorded(node_ids.EVALUATOR, private_training.MAX_EPSILON_KEY)
    settings.append(("privacy budget (max epsilon)", str(budget) if budget else "none"))
    # Recorded by the Beam runner; other runners' runs leave it out.
    settings.append(("code version", run.code_version or "not recorded by this run's runner"))
    return settings


def floor_setting(metric_class: str) -> str:
    """The settings row naming a metric's blessing floor."""
    return f"{metric_class} floor (blessing)"


def evaluation_settings(eval_config: dict) -> list[tuple[str, str]]:
    """The blessing thresholds and the operating threshold from TFMA's
    EvalConfig as the Evaluator recorded it (JSON)."""
    found = []
    for spec in eval_config.get("metrics_specs", []):
        for metric in spec.get("metrics", []):
            for per_slice in metric.get("per_slice_thresholds", []):
                threshold = per_slice.get("threshold", {})
                floor = threshold.get("value_threshold", {}).get("lower_bound")
                if floor is not None:
                    found.append((floor_setting(metric["class_name"]), f"{floor:g}"))
                change = threshold.get("change_threshold", {}).get("absolute")
                if change is not None:
                    found.append(
                        (f"{metric['class_name']} allowed drop vs baseline", f"{-change:g}")
                    )
            if metric.get("class_name") == "Precision" and metric.get("config"):
                thresholds = json.loads(metric["config"]).get("thresholds") or []
                if thresholds:
                    found.append(("operating threshold", f"{thresholds[0]:g}"))
    return found


def _model_card(run: summary.RunSummary) -> str | None:
    if not run.pushed_path:
        return None
    location = model_card.card_location(run.pushed_path)
    return location if storage.location(location).is_file() else None


def build(config: PipelineConfig, connection_config=None, run_id: str | None = None) -> Report:
    """Reads the newest run of `config.pipeline_name` (or run `run_id`) into a Report."""

    connection_config = connection_config or metadata.connection_config(config)
    run = summary.run_summary(config, connection_config, run_id)
    history = run_history.history(connection_config, config.pipeline_name)
    run_ids = [row.run_id for row in history]
    position = run_ids.index(run.run_id) if run.run_id in run_ids else -1
    previous = (
        summary.run_summary(config, connection_config, run_ids[position - 1])
        if position > 0
        else None
    )

    def output(node_id: str, key: str):
        node = run.nodes.get(node_id)
        return node.artifact(key) if node else None

    statistics_artifact = output(node_ids.STATISTICS_GEN, "statistics")
    schema_artifact = next(
        filter(None, (output(node, "schema") for node in node_ids.SCHEMA_NODES)), None
    )
    feature_views: list[FeatureView] = []
    if statistics_artifact is not None:
        baseline = (run.validation_report or {}).get("drift_baseline") or {}
        feature_views = feature_table(
            statistics_artifact.uri,
            baseline.get("uri"),
            schema_artifact.uri if schema_artifact is not None else None,
        )
    anomalies_artifact = output(node_ids.EXAMPLE_VALIDATOR, "anomalies")
    anomalies = []
    if anomalies_artifact is not None:
        for split in summary.split_names(anomalies_artifact):
            for found in validation_files.read_anomalies(anomalies_artifact.uri, split):
                anomalies.append({"split": split, **found})
    evaluation = output(node_ids.EVALUATOR, "evaluation")
    metrics = evaluation_files.metrics_by_model(evaluation.uri) if evaluation is not None else {}
    overall = metrics.get(evaluation_files.CANDIDATE, {}).get(evaluation_files.OVERALL, {})
    return Report(
        config=config,
        run=run,
        features=feature_views,
        anomalies=anomalies,
        metrics=metrics,
        charts=(
            _charts(evaluation.uri, config.decision_threshold, overall.get("mean_label"))
            if evaluation is not None
            else []
        ),
        lineage=_lineage(run, config),
        history=history[: position + 1] if position >= 0 else history,
        store_history=history,
        statistics_uri=statistics_artifact.uri if statistics_artifact is not None else None,
        previous=previous,
        settings=run_settings(run),
        model_card=_model_card(run),
    )


def write(
    config: PipelineConfig,
    output_dir: str | Location | None = None,
    connection_config=None,
    run_id: str | None = None,
) -> Location:
    """Writes the run's page (the newest run by default) and the index, into a
    local folder or a bucket; returns the page's location."""
    return save(build(config, connection_config, run_id), output_dir)


def save(report: Report, output_dir: str | Location | None = None) -> Location:
    """Writes a built report's page and the index; returns the page's location."""
    config = report.config
    folder = storage.location(str(output_dir or f"{config.report_dir}/{config.pipeline_name}"))
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / pages.page_name(report.run.run_id)
    page.write_text(pages.render(report), encoding="utf-8")
    written = {p.name for p in folder.iterdir() if p.name.endswith(".html")}
    (folder / "index.html").write_text(
        # Every run, also those newer than the one reported (an earlier run's
        # page must not drop them from the index).
        pages.render_index(config, report.store_history, written),
        encoding="utf-8",
    )
    return page


def inline(page: Location, height: int = 900) -> str:
    """The page framed for a notebook cell: its links (the index, the other
    runs) resolve in the report's folder, not next to the notebook."""
    import html

    text = page.read_text(encoding="utf-8")
    folder = str(page).rsplit("/", 1)[0]
    base = storage.url(folder)
    text = text.replace("<head>", f'<head><base href="{html.escape(base)}/">', 1)
    # In a <div>: IPython warns about a bare <iframe> ("use IFrame instead"),
    # which needs a URL a notebook server serves.
    return (
        f'<div><iframe srcdoc="{html.escape(text)}" '
        f'style="width:100%;height:{height}px;border:1px solid #ddd"></iframe></div>'
    )


def main(argv: Sequence[str] | None = None) -> int:
    from settings import configs

    parser = argparse.ArgumentParser(
        prog="python -m reporting.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--output-dir", help="a folder or bucket URI (default: <report_dir>/<pipeline_name>)"
    )
    parser.add_argument("--run-id", help="the run to report (default: the newest)")
    config, args = configs.parse_args(parser, argv)
    try:
        page = write(config, args.output_dir, run_id=args.run_id)
    except ValueError as error:  # an unknown run id
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Run report: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
