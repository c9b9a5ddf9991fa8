"""The run report drawn as HTML: one self-contained page per run, and the
index of runs. Pure rendering of a `reporting.report.Report`: nothing here
reads ML Metadata or an artifact (reporting/report.py reads them).

Every sentence states a fact of this run or this store: what is served is
read from the serving folder, never assumed; a refusal's cause and the
command that fixes it come first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from components import evaluation_files, validation_gate
from data import storage
from models import features
from reporting import run_history, summary
from reporting.charts import Bar, Line, Rule, bar_chart, e, line_chart, table

if TYPE_CHECKING:  # the Report module imports this one to draw its pages
    from reporting.report import FeatureView, Report
    from settings.configs import PipelineConfig

BASELINE = evaluation_files.BASELINE

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 12px}
h1{font-size:22px;overflow-wrap:anywhere}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin:18px 0 4px}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f4f4f4}.scroll{overflow-x:auto;max-width:100%}
.verdict{font-size:17px;padding:10px 14px;border-radius:6px;margin:12px 0}
.ok{background:#e5f4e8;border:1px solid #9cd3a7}.stop{background:#fdecea;border:1px solid #f1a9a0}
.warn{background:#fff6e0;border:1px solid #f0cf7a}.grid{display:flex;flex-wrap:wrap;gap:18px}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px 10px;flex:1 1 440px;max-width:540px;min-width:0}
.muted{color:#777}svg text{font:11px system-ui,sans-serif;fill:#333}code,pre{font-size:12px}
pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;overflow-wrap:anywhere}
tr.failed td{background:#fdecea}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>"
    )


def _verdict(run: summary.RunSummary) -> tuple[str, str]:
    failed = [n.node_id for n in run.nodes.values() if n.state == "FAILED"]
    if run.stopped_by_validation:
        return "stop", (
            "Stopped by data validation before Transform: nothing was trained or pushed; "
            f"{run.served_text()}."
        )
    if failed:
        return "stop", (
            f"Failed at {', '.join(failed)}; nothing after it ran; {run.served_text()}."
        )
    if run.blessed is False:
        return "warn", f"Not blessed, not pushed: {run.blessing_reason}; {run.served_text()}."
    if run.pushed_path and run.push_reused_version:
        return "ok", f"Blessed; nothing new pushed: version {run.pushed_version} is this model."
    if run.pushed_path:
        return "ok", f"Blessed and pushed as version {run.pushed_version}: {run.blessing_reason}."
    if run.push_refused:
        return "warn", f"Blessed, not pushed: {run.push_refused}."
    return "warn", "The run has not reached the Evaluator (still running, or stopped)."


def _cause(report: Report) -> str:
    """Why the data was refused and the command that fixes it, under the verdict."""
    run = report.run
    if not run.stopped_by_validation:
        return ""
    problems = [
        f"{a['split']}: {a['feature']}: {a['anomaly']}: "
        f"{validation_gate.shortened_detail(a['detail'])}"
        for a in report.anomalies
    ] or ["drift beyond the schema's thresholds, which blocks runs (see the Data section)"]
    text = f"<div id='cause'><p>What validation found in span {e(run.span)}:</p><ul>" + (
        "".join(f"<li>{e(line)}</li>" for line in problems) + "</ul>"
    )
    if run.schema_review:
        text += (
            "<p>If the data is right and CFPB's values really changed, see what accepting "
            "them would change in the schema (<code>accept</code> in place of <code>diff</code> "
            "writes it, for review in git):</p>"
            f"<pre id='fix-command'>{e(run.schema_review)}</pre>"
        )
    return text + "<p>Otherwise fix the export and run again.</p></div>"


def _glance(report: Report) -> str:
    run = report.run
    css, text = _verdict(run)
    drift = (
        summary.drift_text(run.validation_report)
        if run.validation_report
        else "not measured: the run stopped before validation"
    )
    facts = [
        ("run", run.run_id or "-"),
        ("spans trained on", ", ".join(map(str, run.window_spans)) or "none"),
        ("rows", ", ".join(f"{s} {r:,}" for s, r in run.split_rows.items()) or "-"),
        ("drift", drift),
        ("eval AUC", _auc_text(report)),
    ]
    if run.privacy_text:
        facts.append(("privacy", run.privacy_text))
    if run.scoring_text:
        facts.append(("batch scoring", run.scoring_text))
    facts.append(("ML Metadata", run.metadata_location))
    if run.pushed_path:
        facts.append(
            ("model card", report.model_card or "none (this version was pushed without one)")
        )
    components = table(
        ["component", "state", "seconds"],
        [(n.node_id, n.state, f"{n.seconds:.1f}") for n in run.nodes.values()],
    )
    settings = (
        table(None, report.settings, "settings")
        if report.settings
        else "<p>No settings recorded.</p>"
    )
    return (
        f'<div class="verdict {css}" id="verdict">{e(text)}</div>{_cause(report)}'
        + table(None, facts, "facts")
        + _card_link(report)
        + "<h3>Components</h3>"
        + components
        + "<h3>Settings of this run (as its components recorded them)</h3>"
        + settings
    )


def _card_link(report: Report) -> str:
    location = report.model_card
    if location is None:
        return ""
    href = storage.url(location)
    return (
        f'<p><a id="model-card" href="{e(href)}">The model card of version '
        f"{e(report.run.pushed_version)}</a></p>"
    )


def _auc_text(report: Report) -> str:
    run = report.run
    if run.auc_overall is None:
        return "not evaluated"
    text = f"{run.auc_overall.value:.3f} overall ({run.auc_overall.examples:,} eval rows)"
    floor = report.auc_floor
    if floor:
        text += f"; blessing floor {floor}"
    if run.auc_worst_slice:
        w = run.auc_worst_slice
        text += f"; worst slice {w.slice_name}: {w.value:.3f} ({w.examples:,} rows)"
    return text


def _feature_card(view: FeatureView, drift_measured: bool) -> str:
    baseline = dict(view.baseline_values) if drift_measured else {}
    rows = [
        Bar(
            value,
            {"this span": share, **({BASELINE: baseline[value]} if value in baseline else {})},
        )
        for value, share in view.values
    ]
    if not drift_measured:
        drift = "drift not measured"
    elif view.drift is not None and view.drift_threshold is not None:
        drift = (
            f"{view.drift_kind} distance {view.drift:.4f}, threshold {view.drift_threshold:g}"
            + (": DRIFTED" if view.drift > view.drift_threshold else "")
        )
    else:
        drift = "no drift baseline" if not view.baseline_values else "no drift comparator"
    return bar_chart(
        f"{view.name} ({view.kind})",
        rows,
        f"{view.empty_share:.1%} empty; {drift}",
        value_text=lambda v: f"{v:.1%}",
    )


def _data_section(report: Report) -> str:
    if not report.features:
        return "<p>No statistics were recorded for this run.</p>"
    baseline = (report.run.validation_report or {}).get("drift_baseline") or {}
    itself = bool(baseline.get("uri")) and baseline.get("uri") == report.statistics_uri
    drift_measured = bool(baseline.get("uri")) and not itself
    label = [v for v in report.features if v.name == features.LABEL_KEY]
    inputs = [v for v in report.features if v.name != features.LABEL_KEY and v.values]
    note = (
        "<p class='muted'>Drift not measured by this run: this span's statistics were already "
        "validated by an earlier run, which measured its drift against the span before it "
        "(that run's report shows it).</p>"
        if itself
        else ""
    )
    intro = (
        "<p>Train split of this run's span"
        + (
            " (blue) against the drift baseline, the statistics of the last validated earlier "
            "span (orange)"
            if drift_measured
            else ""
        )
        + ", as shares of rows.</p>"
    )
    anomalies = (
        table(
            ["split", "feature", "anomaly", "detail"],
            [(a["split"], a["feature"], a["anomaly"], a["detail"]) for a in report.anomalies],
            "anomalies",
        )
        if report.anomalies
        else "<p>No anomalies against the schema.</p>"
    )
    label_card = "".join(_feature_card(v, drift_measured) for v in label)
    return (
        f"{intro}{note}<h3>Label</h3><div class='grid'>{label_card}</div>"
        f"<h3>Input features</h3><div class='grid'>"
        f"{''.join(_feature_card(v, drift_measured) for v in inputs)}</div>"
        f"<h3>Anomalies</h3>{anomalies}"
        f"<h3>Training/serving skew</h3>{_skew_section(report.run.serving_skew)}"
    )


def _skew_section(result) -> str:
    if result is None:
        return (
            "<p>No skew check yet: <code>python -m feedback.skew</code> compares the requests "
            "serving logged with the training statistics.</p>"
        )
    rows = [
        (
            m["feature"],
            m["comparator"],
            f"{m['distance']:.4f}",
            f"{m['threshold']:g}",
            "SKEWED" if m["beyond"] else "ok",
        )
        for m in result.measurements
    ]
    found = "".join(
        f"<li>{e(name)}: {e(text)}</li>" for name, text in result.serving_anomalies.items()
    )
    return (
        f"<p>{e(result.describe())}: <b>{e(result.verdict())}</b></p>"
        + table(["feature", "comparator", "distance", "threshold", "verdict"], rows, "skew")
        + (f"<p>Schema anomalies in the logged requests:</p><ul>{found}</ul>" if found else "")
    )


# Each metric shown, how it is named and written.
_METRICS = (
    ("example_count", "eval rows", lambda v: f"{v:,.0f}"),
    ("mean_label", "share disputed (base rate)", lambda v: f"{v:.1%}"),
    ("auc", "AUC (0.5 = coin flip)", lambda v: f"{v:.4f}"),
    ("precision", "precision", lambda v: f"{v:.4f}"),
    ("recall", "recall", lambda v: f"{v:.4f}"),
    ("binary_accuracy", "accuracy", lambda v: f"{v:.4f}"),
    (
        "calibration",
        "calibration (mean prediction / share disputed; 1 = calibrated, 1.25 = 25% too high)",
        lambda v: f"{v:.3f}",
    ),
)
_AT_THRESHOLD = ("precision", "recall", "binary_accuracy")


def _metrics_table(report: Report) -> str:
    candidate = report.metrics.get(evaluation_files.CANDIDATE, {}).get("overall", {})
    baseline = report.metrics.get(BASELINE, {}).get("overall", {})
    threshold = report.config.decision_threshold
    rows = [
        [label + (f" at threshold {threshold:g}" if name in _AT_THRESHOLD else "")]
        + [write(candidate[name])]
        + ([write(baseline[name]) if name in baseline else "-"] if baseline else [])
        for name, label, write in _METRICS
        if name in candidate
    ]
    compared = report.history[-1].baseline_model if report.history else ""
    header = ["metric", "candidate"] + ([f"baseline ({compared})"] if baseline else [])
    return table(header, rows, "metrics")


def _confusion(report: Report) -> str:
    overall = report.metrics.get(evaluation_files.CANDIDATE, {}).get("overall", {})
    matrix = evaluation_files.confusion_matrix(overall)
    if matrix is None:
        return ""
    threshold = report.config.decision_threshold
    rows = [
        ("disputed", f"{matrix.true_positives:,.0f}", f"{matrix.false_negatives:,.0f}"),
        ("not disputed", f"{matrix.false_positives:,.0f}", f"{matrix.true_negatives:,.0f}"),
    ]
    return f"<h3>Confusion matrix at threshold {threshold:g} (eval rows)</h3>" + table(
        ["actual \\ predicted", "disputed", "not disputed"], rows, "confusion"
    )


def _curve_cards(report: Report) -> list[str]:
    threshold = report.config.decision_threshold
    cards = []
    for chart in report.charts:
        lines = [
            Line(
                c.name,
                c.points,
                c.operating_point,
                f"threshold {threshold:g}" if c.operating_point else "",
            )
            for c in chart.curves
        ]
        level = (
            (chart.base_rate, f"base rate {chart.base_rate:.1%}")
            if chart.base_rate is not None
            else None
        )
        cards.append(
            line_chart(chart.title, chart.x_label, chart.y_label, lines, chart.diagonal, level)
        )
    return cards


def _slice_cards(report: Report) -> list[str]:
    candidate = report.metrics.get(evaluation_files.CANDIDATE, {})
    baseline = report.metrics.get(BASELINE, {})
    floor = report.auc_floor
    rules = [Rule(0.5, "coin flip 0.5", "#888")]
    if floor:
        rules.append(Rule(float(floor), f"floor {floor}"))
    cards = []
    for feature in ("product", "state"):
        slices = sorted(
            (
                (name.split(":", 1)[1], values)
                for name, values in candidate.items()
                if name.startswith(f"{feature}:")
            ),
            key=lambda item: -evaluation_files.rows(item[1]),
        )[:15]
        if not slices:
            continue
        rows = []
        for value, values in slices:
            unscored = evaluation_files.unscorable(values)
            other = baseline.get(f"{feature}:{value}", {})
            scores = {"candidate": values["auc"]} if not unscored else {}
            if not unscored and "auc" in other and evaluation_files.unscorable(other) is None:
                scores[BASELINE] = other["auc"]
            rows.append(
                Bar(
                    value,
                    scores,
                    f"{evaluation_files.rows(values):,} rows",
                    unscored.split(": ", 1)[-1] if unscored else "",
                )
            )
        cards.append(
            bar_chart(
                f"AUC by {feature}",
                rows,
                f"the {len(rows)} largest slices; slices under "
                f"{evaluation_files.MIN_SLICE_EXAMPLES} rows or of one class are not scored",
                scale_max=1.0,
                rules=rules,
            )
        )
    return cards


def _model_section(report: Report) -> str:
    if not report.metrics:
        return "<p>The run did not reach the Evaluator.</p>"
    threshold = report.config.decision_threshold
    worst = report.run.auc_worst_slice
    worst_text = (
        f"<p id='worst-slice'>Worst slice that can be scored: <b>{e(worst.slice_name)}</b>, "
        f"AUC {worst.value:.3f} on {worst.examples:,} rows.</p>"
        if worst
        else ""
    )
    return (
        "<p>On the eval rows of the training window. Precision, recall and accuracy count a "
        f"complaint as predicted disputed from probability {threshold:g} (the operating "
        "threshold, marked on the curves).</p>"
        + _metrics_table(report)
        + _confusion(report)
        + worst_text
        + f'<div class="grid">{"".join(_curve_cards(report) + _slice_cards(report))}</div>'
    )


def _scoring_section(run: summary.RunSummary) -> str:
    """What the served model said of the newest span's open complaints."""
    found = run.scoring
    if found is None:
        return "<p>The run did not reach batch scoring.</p>"
    text = f"<p id='scoring-text'>{e(run.scoring_text)}</p>"
    if not found.get("scored"):
        return text
    percentiles = found["percentiles"]
    top = found["top_decile"]
    rows = [
        ("lowest", f"{percentiles['0']:.3f}"),
        ("10th percentile", f"{percentiles['10']:.3f}"),
        ("median", f"{percentiles['50']:.3f}"),
        ("90th percentile", f"{percentiles['90']:.3f}"),
        ("highest", f"{percentiles['100']:.3f}"),
        ("mean (expected share disputed)", f"{found['mean_probability']:.3f}"),
        (
            f"top decile ({top['complaints']:,} complaints)",
            f"from {top['lowest_probability']:.3f}, mean {top['mean_probability']:.3f}",
        ),
        ("ranked list", run.scores_path or "-"),
    ]
    return (
        text + "<p>Dispute probability of the complaints the company has responded to whose "
        'outcome is still open (data/README.md, "The prediction moment"), by the served '
        "model; <code>scores.csv</code> ranks them, the most likely dispute first.</p>"
        + table(["score", "dispute probability"], rows, "scoring")
    )


def _changes(report: Report) -> str:
    rows = report.history
    if not rows:
        return (
            "<p>No run history: this store holds TFX's legacy launcher records "
            "(InteractiveContext), where each component runs on its own.</p>"
        )
    if len(rows) < 2:
        return "<p>This is the first run in this store.</p>"
    previous, current = rows[-2].cells(), rows[-1].cells()
    changed = [
        (column, before, after)
        for column, before, after in zip(run_history.COLUMNS, previous, current, strict=True)
        if column != "run" and before != after
    ]
    if report.previous is not None:
        changed += [
            (label, before, after)
            for (label, before), (_, after) in zip(
                _measured(report.previous), _measured(report.run), strict=True
            )
            if before != after
        ]
    if not changed:
        return "<p>Nothing changed in the run's decisions since the previous run.</p>"
    return table(["", "previous run", "this run"], changed)


def render(report: Report) -> str:
    run = report.run
    title = f"{report.config.pipeline_name} run {run.run_id}"
    return _page(
        title,
        f'<p><a href="index.html">all runs</a></p><h1>{e(title)}</h1>'
        f'<h2 id="glance">The run at a glance</h2>{_glance(report)}'
        f'<h2 id="data">Data</h2>{_data_section(report)}'
        f'<h2 id="model">Model</h2>{_model_section(report)}'
        f'<h2 id="scoring">Batch scoring</h2>{_scoring_section(report.run)}'
        f'<h2 id="lineage">Lineage</h2>{table(["step", "artifact"], report.lineage, "lineage")}'
        f'<h2 id="changes">Since the previous run</h2>{_changes(report)}',
    )


INDEX_COLUMNS = (
    "run",
    "status",
    "span read",
    "trained on spans",
    "eval AUC",
    "version pushed",
    "took",
)


def _index_cells(row: run_history.RunDecisions) -> list[str]:
    return [
        row.status,
        "-" if row.span is None else str(row.span),
        ", ".join(map(str, row.window)) or "-",
        "-" if row.auc is None else f"{row.auc:.3f}",
        (row.version or "none") if row.push == run_history.NEW else "none",
        _duration(row.seconds),
    ]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:,.0f} s"


def render_index(
    config: PipelineConfig, rows: list[run_history.RunDecisions], pages: set[str]
) -> str:
    table_rows = []
    for row in reversed(rows):
        failed = row.status.startswith(("FAILED", "stopped", "running"))
        cells = "".join(f"<td>{e(c)}</td>" for c in _index_cells(row))
        link = (
            f'<a href="{e(page_name(row.run_id))}">{e(row.run_id)}</a>'
            if page_name(row.run_id) in pages
            else e(row.run_id)
        )
        css = ' class="failed"' if failed else ""
        table_rows.append(f"<tr{css}><td>{link}</td>{cells}</tr>")
    listed = {page_name(row.run_id) for row in rows}
    for page in sorted(pages - listed - {"index.html"}, reverse=True):
        # Runs without history rows (legacy launcher stores): their page only.
        table_rows.append(f'<tr><td><a href="{e(page)}">{e(page[:-5])}</a></td></tr>')
    head = "".join(f"<th>{e(c)}</th>" for c in INDEX_COLUMNS)
    return _page(
        f"{config.pipeline_name} runs",
        f"<h1>{e(config.pipeline_name)}: runs, newest first</h1>"
        "<p>A version is the folder TF Serving serves it from; 'none' when the run pushed "
        "nothing new.</p>"
        f'<div class="scroll"><table class="runs"><tr>{head}</tr>{"".join(table_rows)}'
        "</table></div>",
    )


def page_name(run_id: str | None) -> str:
    return f"{(run_id or 'run').replace(':', '_').replace('/', '_')}.html"


def _measured(run: summary.RunSummary) -> list[tuple[str, str]]:
    """What a run measured, as text, for comparing two runs."""
    auc = run.auc_overall
    return [
        ("rows (train, eval, test)", ", ".join(f"{r:,}" for r in run.split_rows.values()) or "-"),
        ("eval AUC overall", f"{auc.value:.4f} ({auc.examples:,} rows)" if auc else "-"),
        ("version pushed (or kept, if unchanged)", run.pushed_version or "-"),
    ]
