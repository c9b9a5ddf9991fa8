"""The notebook: committed without outputs, and executed headless on a small
slice (every cell must run) with ML Metadata and the pushed model checked after."""

import re
from pathlib import Path

import nbformat
import pytest

from settings.configs import PipelineConfig
from tests.conftest import (
    E2E_ROWS_PER_SPAN,
    E2E_TRAIN_STEPS,
    EXECUTING_COMPONENTS,
    completed_component_types,
    mysql_settings,
)

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "interactive_pipeline.ipynb"


def test_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_components_come_from_the_pipeline_factory():
    source = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells)
    assert "pipeline.create_components(config)" in source
    assert "tfx.components." not in source  # no copied wiring


@pytest.mark.e2e
def test_notebook_runs_headless_end_to_end(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    work_dir = tmp_path / "notebook"
    monkeypatch.setenv("CFPB_NOTEBOOK_DIR", str(work_dir))
    monkeypatch.setenv("CFPB_NOTEBOOK_ROWS", str(E2E_ROWS_PER_SPAN))
    monkeypatch.setenv("CFPB_NOTEBOOK_TRAIN_STEPS", str(E2E_TRAIN_STEPS))
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    # Raises CellExecutionError, naming the cell, if any cell fails.
    NotebookClient(
        notebook,
        timeout=1200,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()

    executed = completed_component_types(
        PipelineConfig(metadata_path=str(work_dir / "metadata.sqlite"))
    )
    assert set(EXECUTING_COMPONENTS) <= executed, executed
    pushed = list((work_dir / "serving_model" / "cfpb_disputes").glob("*/saved_model.pb"))
    assert len(pushed) == 1
    last_output = notebook.cells[-1].outputs[-1]["data"]["text/plain"]
    assert "dispute_probability" in last_output
    # The run report, written and shown inline for the notebook's run.
    (page,) = [
        p
        for p in (work_dir / "reports" / "cfpb-disputes-notebook").glob("*.html")
        if p.name != "index.html"
    ]
    assert 'id="verdict"' in page.read_text()
    shown = [
        o for c in notebook.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})
    ]
    assert any("srcdoc" in o["data"]["text/html"] for o in shown)
    # No script of a library's widgets (Beam's loads jQuery from a CDN).
    assert not [
        o
        for c in notebook.cells
        for o in c.get("outputs", [])
        if "application/javascript" in o.get("data", {})
    ]
    # Every line a cell prints is one the notebook means to print.
    printed = [
        (i, o.get("name"), line)
        for i, c in enumerate(notebook.cells)
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
        for line in o["text"].splitlines()
        if line.strip()
    ]
    assert [p for p in printed if p[1] == "stderr"] == [], printed
    unexpected = [p for p in printed if not any(r.search(p[2]) for r in ALLOWED_LINES)]
    assert unexpected == [], unexpected
    # The scoring demo asks about complaints the model was trained on (closed responses).
    assert "In progress" not in notebook.cells[-1].source
    _read_offline_in_chromium(notebook, page, tmp_path)


# What the notebook prints on purpose: preparation's report, the artifact
# CsvExampleGen wrote, the product vocabulary, Keras' one line per epoch, the
# run summary, the report's path. Anything else (a library's log line, a
# warning) is noise in a cell.
ALLOWED_LINES = [
    re.compile(pattern)
    for pattern in (
        r"^span \d{8} <- \S+ \(.*\): \d+ rows written",
        r"^  (rejected|excluded|fixed) +\d+ ",
        r"^  note: ",
        r"^  columns (ignored|absent)",
        r"^span \d{8}, splits \[",
        r"^/\S+/CsvExampleGen/examples/\d+$",
        r"^product vocabulary: \[",
        r"^\d+/\d+ - \d+s - loss: [\d.]+ - auc: ",
        r"^Run summary: run ",
        r"^  (components|rows|window|anomalies|drift|eval AUC|trained|privacy|blessed|pushed|scored|skew|MLMD) ",
        r"^/\S+\.html$",
    )
]


def _read_offline_in_chromium(notebook, page: Path, tmp_path: Path) -> None:
    """The executed notebook exported to HTML (notebooks/offline.html.j2), and
    the report shown inline, opened in Chromium: no request but the page's
    own files, and the inline report's "all runs" link finds the index."""
    from nbconvert import HTMLExporter

    from tests.browser import Browser

    html, _ = HTMLExporter(
        template_name="lab", template_file=str(NOTEBOOK.parent / "offline.html.j2")
    ).from_notebook_node(notebook)
    exported = tmp_path / "interactive_pipeline.html"
    exported.write_text(html)
    browser = Browser()
    try:
        browser.open(exported.as_uri())
        requested = [u for u in browser.requested_urls() if not u.startswith(("data:", "about:"))]
        assert requested == [exported.as_uri()], requested
        assert browser.failed_requests() == []
        link = browser.evaluate(
            "document.querySelector('iframe').contentDocument.querySelector('a').href"
        )
        assert link == (page.parent / "index.html").as_uri(), link
        assert (page.parent / "index.html").is_file()
    finally:
        browser.close()


@pytest.mark.integration
def test_notebook_keeps_ml_metadata_on_mysql_when_configured(servers, tmp_path, monkeypatch):
    """The notebook's first cells, up to CsvExampleGen, with the MySQL settings
    in the environment: the execution lands in MySQL, no SQLite file appears."""
    from nbclient import NotebookClient

    settings = mysql_settings(servers, "mlmd_notebook")
    for name, value in settings.items():
        monkeypatch.setenv(f"CFPB_{name.upper()}", str(value))
    monkeypatch.setenv("CFPB_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("CFPB_NOTEBOOK_ROWS", str(E2E_ROWS_PER_SPAN))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    first_run = next(
        i
        for i, c in enumerate(notebook.cells)
        if c.source.startswith('context.run(components["CsvExampleGen"])')
    )
    notebook.cells = notebook.cells[: first_run + 1]

    NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()

    assert "CsvExampleGen" in completed_component_types(PipelineConfig(**settings))
    assert not list(tmp_path.rglob("*.sqlite"))
