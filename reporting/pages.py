"""The run report drawn as HTML: one self-contained page per run, and the
index of runs. Pure rendering of a `reporting.report.Report`: nothing here
reads ML Metadata or an artifact (reporting/report.py reads them).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipeline import node_ids
from reporting import run_history, summary

if TYPE_CHECKING:  # the Report module imports this one to draw its pages
    from reporting.report import Curve, Report
    from settings.configs import PipelineConfig

BASELINE = summary.BASELINE

_COLORS = {"candidate": "#1f6fb4", BASELINE: "#e08a1e", "this span": "#1f6fb4"}
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin:18px 0 4px}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
.verdict{font-size:17px;padding:10px 14px;border-radius:6px;margin:12px 0}
.ok{background:#e5f4e8;border:1px solid #9cd3a7}.stop{background:#fdecea;border:1px solid #f1a9a0}
.warn{background:#fff6e0;border:1px solid #f0cf7a}.grid{display:flex;flex-wrap:wrap;gap:18px}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px 10px}.muted{color:#777}
svg text{font:11px system-ui,sans-serif;fill:#333}code{font-size:12px}
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _bar_chart(
    title: str,
    rows: list[tuple[str, dict[str, float], str]],
    subtitle: str = "",
    width: int = 470,
    scale_max: float | None = None,
) -> str:
    """Horizontal bars: one group per row label, one bar per series; a note per row."""
    series = sorted({s for _, values, _ in rows for s in values}, key=lambda s: s != "candidate")
    top = scale_max or max([v for _, values, _ in rows for v in values.values()] + [1e-9])
    bar, gap, label_w, note_w = 11, 6, 170, 90
    height = len(rows) * (bar * len(series) + gap) + 24
    parts = [
        f'<svg class="chart" role="img" aria-label="{_e(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">'
    ]
    y = 18
    plot_w = width - label_w - note_w
    for label, values, note in rows:
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar}" text-anchor="end">{_e(label[:28])}</text>'
        )
        for i, name in enumerate(series):
            value = values.get(name)
            if value is None or math.isnan(value):
                continue
            w = max(plot_w * value / top, 1)
            parts.append(
                f'<rect class="bar" data-series="{_e(name)}" data-value="{value:.4f}" '
                f'x="{label_w}" y="{y + i * bar}" width="{w:.1f}" height="{bar - 2}" '
                f'fill="{_COLORS.get(name, "#999")}"><title>{_e(name)}: {value:.3f}</title></rect>'
            )
        parts.append(
            f'<text x="{width - note_w + 4}" y="{y + bar}" class="muted">{_e(note)}</text>'
        )
        y += bar * len(series) + gap
    legend = " ".join(
        f'<tspan style="fill:{_COLORS.get(s, "#999")}">&#9632;</tspan> {_e(s)}' for s in series
    )
    parts.append(f'<text x="{label_w}" y="11">{legend}</text></svg>')
    note = f'<div class="muted">{_e(subtitle)}</div>' if subtitle else ""
    return f'<div class="card"><h3>{_e(title)}</h3>{note}{"".join(parts)}</div>'


def _line_chart(title: str, curves: list[Curve], size: int = 300, diagonal: bool = True) -> str:
    pad = 34
    inner = size - 2 * pad
    parts = [
        f'<svg class="chart" role="img" aria-label="{_e(title)}" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}">',
        f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" stroke="#bbb"/>',
    ]
    if diagonal:
        parts.append(
            f'<line x1="{pad}" y1="{pad + inner}" x2="{pad + inner}" y2="{pad}" '
            'stroke="#ccc" stroke-dasharray="4 3"/>'
        )
    for tick in (0, 0.5, 1):
        x = pad + tick * inner
        parts.append(f'<text x="{x}" y="{size - 12}" text-anchor="middle">{tick:g}</text>')
        parts.append(
            f'<text x="{pad - 6}" y="{pad + inner - tick * inner + 4}" text-anchor="end">{tick:g}</text>'
        )
    for n, curve in enumerate(curves):
        if not curve.points:
            continue
        points = " ".join(
            f"{pad + min(max(x, 0), 1) * inner:.1f},{pad + inner - min(max(y, 0), 1) * inner:.1f}"
            for x, y in curve.points
        )
        color = _COLORS.get(curve.name, "#999")
        parts.append(
            f'<polyline class="curve" data-series="{_e(curve.name)}" points="{points}" '
            f'fill="none" stroke="{color}" stroke-width="2"/>'
        )
        parts.append(
            f'<text x="{pad + 6}" y="{pad + 14 + 13 * n}" style="fill:{color}">{_e(curve.name)}</text>'
        )
    parts.append("</svg>")
    return f'<div class="card"><h3>{_e(title)}</h3>{"".join(parts)}</div>'


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><tr>{head}</tr>{body}</table>'


def _verdict(run: summary.RunSummary) -> tuple[str, str]:
    gate = run.nodes.get(node_ids.VALIDATION_GATE)
    failed = [n.node_id for n in run.nodes.values() if n.state == "FAILED"]
    if gate is not None and gate.state == "FAILED":
        return "stop", (
            "Stopped by data validation before Transform: nothing was trained; "
            "the previously pushed model stays the served one."
        )
    if failed:
        return "stop", f"Failed at {', '.join(failed)}; nothing after it ran."
    if run.blessed is False:
        return "warn", f"Not blessed, not pushed: {run.blessing_reason}."
    if run.pushed_path and run.push_reused_version:
        return "ok", f"Blessed; nothing new pushed: version {run.pushed_version} is this model."
    if run.pushed_path:
        return "ok", f"Blessed and pushed as version {run.pushed_version}: {run.blessing_reason}."
    if run.push_refused:
        return "warn", f"Blessed, not pushed: {run.push_refused}."
    return "warn", "The run has not reached the Evaluator (still running, or stopped)."


def _glance(report: Report) -> str:
    run = report.run
    css, text = _verdict(run)
    components = _table(
        ["component", "state", "seconds"],
        [(n.node_id, n.state, f"{n.seconds:.1f}") for n in run.nodes.values()],
    )
    facts = [
        ("run", run.run_id or "-"),
        ("spans trained on", ", ".join(map(str, run.window_spans)) or "-"),
        ("rows", ", ".join(f"{s} {r:,}" for s, r in run.split_rows.items()) or "-"),
        ("drift", summary.drift_text(run.validation_report) if run.validation_report else "-"),
        ("ML Metadata", run.metadata_location),
    ]
    return (
        f'<div class="verdict {css}" id="verdict">{_e(text)}</div>'
        + _table(["", ""], facts)
        + "<h3>Components</h3>"
        + components
    )


def _data_section(report: Report) -> str:
    if not report.features:
        return "<p>No statistics were recorded for this run.</p>"
    cards = []
    for view in report.features:
        labels = [v for v, _ in view.values]
        baseline = dict(view.baseline_values)
        rows = [
            (
                value,
                {"this span": share, **({BASELINE: baseline[value]} if value in baseline else {})},
                f"{share:.1%}",
            )
            for value, share in view.values
        ]
        if view.drift is not None and view.drift_threshold is not None:
            drift = (
                f"{view.drift_kind} distance {view.drift:.4f}, threshold {view.drift_threshold:g}"
                + (": DRIFTED" if view.drift > view.drift_threshold else "")
            )
        else:
            drift = "no drift baseline" if not view.baseline_values else "no drift comparator"
        if labels:
            cards.append(
                _bar_chart(
                    f"{view.name} ({view.kind})", rows, f"{view.empty_share:.1%} empty; {drift}"
                )
            )
    anomalies = (
        _table(
            ["split", "feature", "anomaly", "detail"],
            [(a["split"], a["feature"], a["anomaly"], a["detail"]) for a in report.anomalies],
            "anomalies",
        )
        if report.anomalies
        else "<p>No anomalies against the schema.</p>"
    )
    baseline = (report.run.validation_report or {}).get("drift_baseline") or {}
    itself = (
        "<p class='muted'>This span's statistics were already validated in an earlier run, so "
        "the drift baseline is the span itself (distance 0): drift between spans is measured "
        "by the run that first reads a new span.</p>"
        if baseline.get("uri") and baseline.get("uri") == report.statistics_uri
        else ""
    )
    return (
        "<p>Train split of this run's span (blue) against the drift baseline, the statistics "
        "of the last validated earlier span (orange), as shares of rows.</p>"
        f'{itself}<div class="grid">{"".join(cards)}</div><h3>Anomalies</h3>{anomalies}'
        f"<h3>Training/serving skew</h3>{_skew_section(report.run.serving_skew)}"
    )


def _skew_section(result) -> str:
    if result is None:
        return (
            "<p>No skew check yet: <code>python -m feedback.skew</code> compares the requests "
            "serving logged with the training statistics.</p>"
        )
    table = _table(
        ["feature", "comparator", "distance", "threshold", "verdict"],
        [
            (
                m["feature"],
                m["comparator"],
                f"{m['distance']:.4f}",
                f"{m['threshold']:g}",
                "SKEWED" if m["beyond"] else "ok",
            )
            for m in result.measurements
        ],
        "skew",
    )
    anomalies = "".join(
        f"<li>{_e(name)}: {_e(text)}</li>" for name, text in result.serving_anomalies.items()
    )
    return f"<p>{_e(result.describe())}: <b>{_e(result.verdict())}</b></p>{table}" + (
        f"<p>Schema anomalies in the logged requests:</p><ul>{anomalies}</ul>" if anomalies else ""
    )


_SHOWN_METRICS = ("auc", "precision", "recall", "binary_accuracy", "calibration", "example_count")


def _model_section(report: Report) -> str:
    if not report.metrics:
        return "<p>The run did not reach the Evaluator.</p>"
    candidate = report.metrics.get("candidate", {})
    baseline = report.metrics.get(BASELINE, {})
    threshold = report.config.decision_threshold
    names = [m for m in _SHOWN_METRICS if m in candidate.get("overall", {})]
    overall_rows = [
        [m + (f" (at {threshold:g})" if m in ("precision", "recall", "binary_accuracy") else "")]
        + [f"{candidate['overall'][m]:.4f}"]
        + ([f"{baseline['overall'][m]:.4f}"] if m in baseline.get("overall", {}) else [])
        for m in names
    ]
    compared = report.history[-1].baseline_model if report.history else ""
    header = ["metric", "candidate"] + ([f"baseline ({compared})"] if baseline else [])
    parts = [
        f"<p>On the eval rows of the training window. Precision, recall and accuracy count a "
        f"complaint as predicted disputed from probability {threshold:g} (the operating "
        "threshold, about the share of disputed complaints).</p>",
        _table(header, overall_rows, "metrics"),
    ]
    charts = [
        _line_chart(title, curves, diagonal=not title.startswith("Precision"))
        for title, curves in report.curves.items()
    ]
    for feature in ("product", "state"):
        slices = sorted(
            (
                (name.split(":", 1)[1], values)
                for name, values in candidate.items()
                if name.startswith(f"{feature}:") and "auc" in values
            ),
            key=lambda item: -item[1].get("example_count", 0),
        )[:15]
        if slices:
            rows = [
                (
                    value,
                    {
                        "candidate": values["auc"],
                        **(
                            {BASELINE: baseline[f"{feature}:{value}"]["auc"]}
                            if "auc" in baseline.get(f"{feature}:{value}", {})
                            else {}
                        ),
                    },
                    f"{int(values.get('example_count', 0)):,} rows"
                    + (
                        ""
                        if values.get("example_count", 0) >= summary.MIN_SLICE_EXAMPLES
                        else " (few)"
                    ),
                )
                for value, values in slices
            ]
            charts.append(
                _bar_chart(
                    f"AUC by {feature}",
                    rows,
                    f"largest slices, bars from 0 to 1; under {summary.MIN_SLICE_EXAMPLES} rows "
                    "AUC is mostly noise",
                    scale_max=1.0,
                )
            )
    return "".join(parts) + f'<div class="grid">{"".join(charts)}</div>'


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
    return _table(["", "previous run", "this run"], changed)


def render(report: Report) -> str:
    run = report.run
    title = f"{report.config.pipeline_name} run {run.run_id}"
    lineage = _table(["step", "artifact"], report.lineage, "lineage")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<p><a href="index.html">all runs</a></p><h1>{_e(title)}</h1>'
        f'<h2 id="glance">The run at a glance</h2>{_glance(report)}'
        f'<h2 id="data">Data</h2>{_data_section(report)}'
        f'<h2 id="model">Model</h2>{_model_section(report)}'
        f'<h2 id="lineage">Lineage</h2>{lineage}'
        f'<h2 id="changes">Since the previous run</h2>{_changes(report)}'
        "</body></html>"
    )


def render_index(
    config: PipelineConfig, rows: list[run_history.RunDecisions], pages: set[str]
) -> str:
    table_rows = []
    for row in reversed(rows):
        cells = "".join(f"<td>{_e(c)}</td>" for c in row.cells()[1:])
        link = (
            f'<a href="{_e(page_name(row.run_id))}">{_e(row.run_id)}</a>'
            if page_name(row.run_id) in pages
            else _e(row.run_id)
        )
        table_rows.append(f"<tr><td>{link}</td>{cells}</tr>")
    listed = {page_name(row.run_id) for row in rows}
    for page in sorted(pages - listed - {"index.html"}, reverse=True):
        # Runs without history rows (legacy launcher stores): their page only.
        table_rows.append(f'<tr><td><a href="{_e(page)}">{_e(page[:-5])}</a></td></tr>')
    head = "".join(f"<th>{_e(c)}</th>" for c in ("run", *run_history.COLUMNS[1:]))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(config.pipeline_name)} runs</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(config.pipeline_name)}: runs, newest first</h1>"
        f'<table class="runs"><tr>{head}</tr>{"".join(table_rows)}</table></body></html>'
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
