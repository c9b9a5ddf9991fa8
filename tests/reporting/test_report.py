"""The run report, opened in a real headless Chromium as a user would: the
shared end-to-end run's page, and the page of a run that bad data stopped.
Offline: the test fails on any request that is not the page itself. On a
failed assertion a screenshot is kept under build/test-artifacts/."""

import contextlib
import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from reporting import pages, report, summary
from settings.configs import REPO_ROOT
from tests.browser import Browser
from tests.conftest import SPAN_2015, another_run_starts, pushed_model_dir

pytestmark = pytest.mark.e2e
ARTIFACTS = REPO_ROOT / "build" / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    chrome = Browser()
    yield chrome
    chrome.close()


@contextlib.contextmanager
def _screenshot_on_failure(browser, name):
    try:
        yield
    except AssertionError:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        print(f"screenshot: {browser.screenshot(ARTIFACTS / f'{name}.png')}")
        raise


def _open(browser, page: Path):
    browser.open(page.as_uri())
    # Offline by construction: the page itself is the only request, and nothing failed.
    assert browser.requested_urls() == [page.as_uri()]
    assert browser.failed_requests() == []


def _visible_marks(browser, selector: str) -> int:
    """Chart marks that the browser laid out with a non-empty box."""
    return browser.evaluate(
        f"[...document.querySelectorAll('{selector}')]"
        ".filter(e => {const b = e.getBBox(); return b.width > 0 && b.height > 0}).length"
    )


@pytest.fixture(scope="module")
def good_page(e2e, tmp_path_factory):
    config, _ = e2e
    return report.write(config, tmp_path_factory.mktemp("report"))


def test_the_report_of_a_pushed_run(browser, good_page, e2e):
    config, _ = e2e
    _open(browser, good_page)
    with _screenshot_on_failure(browser, "report-pushed-run"):
        verdict = browser.evaluate("document.getElementById('verdict').textContent")
        # Blessed, and pushed by this run or (re-run by another test) earlier.
        assert verdict.startswith(("Blessed and pushed as version ", "Blessed; nothing new")), (
            verdict
        )
        version = re.search(r"version (\d+)", verdict).group(1)
        # A chart per feature and the label, each with bars for this span.
        cards = browser.evaluate(
            "[...document.querySelectorAll('.card h3')].map(h => h.textContent)"
        )
        for name in ("product (categorical", "zip_code (numeric", "consumer_disputed"):
            assert any(c.startswith(name) for c in cards), cards
        assert _visible_marks(browser, "rect.bar") >= 40
        # Every bar has its value written beside it.
        assert browser.evaluate("document.querySelectorAll('text.value').length") == (
            browser.evaluate("document.querySelectorAll('rect.bar').length")
        )
        # ROC, precision-recall and calibration curves, with axis labels; the
        # operating point on ROC and PR; the base rate on PR.
        assert _visible_marks(browser, "polyline.curve") >= 3
        labels = browser.evaluate(
            "[...document.querySelectorAll('text.axis-label')].map(t => t.textContent)"
        )
        assert {"false positive rate", "precision", "recall"} <= set(labels), labels
        assert _visible_marks(browser, "circle.operating-point") >= 2
        assert browser.evaluate("document.querySelector('line.level').dataset.value")
        # AUC by slice: the floor drawn; small slices written as such, never a bar.
        assert any(c.startswith("AUC by product") for c in cards), cards
        rules = browser.evaluate(
            "[...document.querySelectorAll('line.rule')].map(l => l.dataset.value)"
        )
        assert f"{config.min_auc:g}" in rules and "0.5" in rules, rules
        unscored = browser.evaluate("document.querySelectorAll('text.unscored').length")
        small = browser.evaluate(
            "[...document.querySelectorAll('text.note')].filter(t => "
            "parseInt(t.textContent.replace(/,/g, '')) < 50).length"
        )
        assert unscored >= small, (unscored, small)
        text = browser.evaluate("document.body.innerText")
        for expected in (
            f"precision at threshold {config.decision_threshold:g}",
            "Confusion matrix at threshold",
            "Worst slice that can be scored",
            f"AUC floor (blessing)\t{config.min_auc:g}",
            f"train args (steps)\t{config.train_steps}",
            "code version\t",
            "served version",
            "transform graph",
            "Since the previous run",
        ):
            assert expected in text, expected
        assert "2539.0000" not in text and "example_count" not in text
        # One name per version: the served folder's.
        assert f"version {version}" in text and " v1" not in text
        # The model card of the pushed version, linked.
        card = browser.evaluate("document.getElementById('model-card').href")
        assert (
            card == (Path(config.model_dir) / version / "assets.extra" / "model_card.html").as_uri()
        )


def test_the_report_reads_at_a_phones_width(browser, good_page):
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        width=420,
        height=800,
        deviceScaleFactor=1,
        mobile=True,
    )
    try:
        _open(browser, good_page)
        with _screenshot_on_failure(browser, "report-phone-width"):
            assert browser.evaluate("document.documentElement.scrollWidth") <= 420
            widths = browser.evaluate(
                "[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().right)"
            )
            assert widths and max(widths) <= 420, widths
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")


def test_the_model_card_of_the_pushed_version(browser, e2e):
    import json

    config, _ = e2e
    version = pushed_model_dir(config)
    card = json.loads((version / "assets.extra" / "model_card.json").read_text())
    # Model Card Toolkit's top-level sections, and nothing else.
    assert set(card) == {
        "schema_version",
        "model_details",
        "model_parameters",
        "quantitative_analysis",
        "considerations",
    }
    assert card["model_details"]["version"]["name"] == version.name
    metrics = card["quantitative_analysis"]["performance_metrics"]
    (auc,) = [m for m in metrics if m["slice"] == "overall" and m["type"] == "auc"]
    interval = auc["confidence_interval"]
    assert interval["lower_bound"] < auc["value"] < interval["upper_bound"], auc
    limits = " ".join(x["description"] for x in card["considerations"]["limitations"])
    assert str(SPAN_2015) in limits and "In progress" in limits
    # What the Trainer recorded on the model (the e2e run is not private).
    (privacy,) = [
        x for x in card["considerations"]["ethical_considerations"] if x["name"] == "Privacy"
    ]
    assert privacy["mitigation_strategy"].startswith("trained without differential privacy")
    page = version / "assets.extra" / "model_card.html"
    _open(browser, page)
    with _screenshot_on_failure(browser, "model-card"):
        text = browser.evaluate("document.body.innerText")
        for expected in ("Intended use", "Not for", "Known limits", "95% confidence", "Label rule"):
            assert expected in text, expected
        rows = browser.evaluate("document.querySelectorAll('#metrics tr.slice').length")
        assert rows == len({m["slice"] for m in metrics})


def test_the_index_lists_every_run_with_its_outcome(browser, good_page):
    index = good_page.parent / "index.html"
    _open(browser, index)
    with _screenshot_on_failure(browser, "report-index"):
        links = browser.evaluate("[...document.querySelectorAll('table.runs a')].map(a => a.href)")
        assert links == [good_page.as_uri()]
        header = browser.evaluate(
            "[...document.querySelectorAll('table.runs th')].map(h => h.textContent)"
        )
        assert header == list(pages.INDEX_COLUMNS)
        rows = browser.evaluate(
            "[...document.querySelectorAll('table.runs tr')].slice(1)"
            ".map(r => [...r.cells].map(c => c.textContent))"
        )
        first = rows[-1]  # newest first: the shared run pushed the store's first version
        assert first[1] == "pushed" and first[4].startswith("0.") and first[5].isdigit(), rows
        assert all(row[6].endswith(" s") for row in rows), rows


@pytest.fixture(scope="module")
def stopped_page(stopped_by_validation):
    """The page of a run stopped by validation (tests/conftest.py: half the
    rows of a new span have a product the schema does not know); the runner
    writes its report itself."""
    config, code, output, _ = stopped_by_validation
    assert code == 1, output
    pages = [
        p
        for p in (Path(config.report_dir) / config.pipeline_name).glob("*.html")
        if p.name != "index.html"
    ]
    assert len(pages) == 1 and f"  report      {pages[0]}" in output, output
    return pages[0]


def test_the_report_of_a_run_stopped_by_bad_data(browser, stopped_page, stopped_by_validation):
    import shlex
    import subprocess
    import sys

    config = stopped_by_validation[0]
    _open(browser, stopped_page)
    with _screenshot_on_failure(browser, "report-stopped-run"):
        verdict = browser.evaluate("document.getElementById('verdict').textContent")
        assert verdict.startswith("Stopped by data validation before Transform"), verdict
        # The served model is named as the serving folder has it (a copy of e2e's).
        assert f"in {config.model_dir} stays the served one" in verdict, verdict
        # The cause and the fix come right after the verdict, before any chart.
        cause = browser.evaluate("document.getElementById('cause').innerText")
        assert "product" in cause and "Crypto-asset services" in cause, cause
        first_chart = browser.evaluate(
            "document.querySelector('svg.chart').getBoundingClientRect().top"
        )
        assert (
            browser.evaluate("document.getElementById('fix-command').getBoundingClientRect().top")
            < first_chart
        )
        command = browser.evaluate("document.getElementById('fix-command').textContent")
        anomalies = browser.evaluate(
            "[...document.querySelectorAll('table.anomalies tr')].slice(1).map(r => r.innerText)"
        )
        assert anomalies and all("product" in row for row in anomalies), anomalies
        assert "The run did not reach the Evaluator." in browser.evaluate("document.body.innerText")
    # The command, run as printed, reviews this run's span with its paths.
    assert f"--data-root {config.data_root}" in command, command
    program, module, *args = shlex.split(command)
    assert (program, module) == ("python", "-m")
    shown = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert "Crypto-asset services" in shown.stdout, shown.stdout


def test_a_model_that_was_not_blessed_says_why():
    run = summary.RunSummary(
        run_id="r",
        nodes={},
        split_rows={},
        window_spans=[],
        anomalies={},
        validation_report=None,
        auc_overall=None,
        auc_worst_slice=None,
        blessed=False,
        blessing_reason="AUC 0.52 is below the lower bound 0.55",
        pushed_path=None,
        pushed_version=None,
        push_reused_version=False,
        metadata_location="m",
        serving_dir="m",
    )
    css, text = pages._verdict(run)
    assert css == "warn"
    assert text == (
        "Not blessed, not pushed: AUC 0.52 is below the lower bound 0.55; "
        "no model has been pushed to m, so none is served."
    )


def _summary(run_id, auc, pushed_version, blessed=True):
    return summary.RunSummary(
        run_id=run_id,
        nodes={},
        split_rows={"train": 2400, "eval": 300, "test": 300},
        window_spans=[20150319],
        anomalies={},
        validation_report=None,
        auc_overall=summary.SliceMetric("overall", auc, 300),
        auc_worst_slice=None,
        blessed=blessed,
        blessing_reason="",
        pushed_path=None,
        pushed_version=pushed_version,
        push_reused_version=False,
        metadata_location="m",
    )


def test_changes_since_the_previous_run_name_decisions_and_measurements():
    from reporting import run_history
    from settings.configs import PipelineConfig

    rows = [
        run_history.RunDecisions(
            1, "a", 20141113, [20141113], "nothing", "nothing", True, "new", "1700000000", 1
        ),
        run_history.RunDecisions(
            2, "b", 20141113, [20141113], "nothing", "run 1's model", False, "nothing"
        ),
    ]
    page = report.Report(
        config=PipelineConfig(),
        run=_summary("b", 0.55, None, blessed=False),
        features=[],
        anomalies=[],
        metrics={},
        charts=[],
        lineage=[],
        history=rows,
        store_history=rows,
        previous=_summary("a", 0.58, "1700000000"),
    )
    html = pages._changes(page)
    for expected in (
        "candidate compared with",
        "run 1&#x27;s model",
        "eval AUC overall",
        "0.5800 (300 rows)",
        "0.5500 (300 rows)",
        "1700000000",
    ):
        assert expected in html, html
    assert "span read" not in html and "rows (train" not in html  # unchanged: not listed


def test_a_version_pushed_without_a_card_is_said_to_have_none():
    from settings.configs import PipelineConfig

    run = dataclasses.replace(_summary("r", 0.6, "1700000000"), pushed_path="/serving/m/1700000000")
    page = report.Report(
        config=PipelineConfig(),
        run=run,
        features=[],
        anomalies=[],
        metrics={},
        charts=[],
        lineage=[],
        history=[],
        store_history=[],
    )
    html = pages._glance(page)
    assert "none (this version was pushed without one)" in html
    assert 'id="model-card"' not in html


def test_an_earlier_run_is_reported_by_its_id(e2e, tmp_path, capsys):
    """Reporting an earlier run keeps every run of the store in the index."""
    from reporting import run_history
    from settings import metadata

    source, _ = e2e
    config = dataclasses.replace(source, metadata_path=str(tmp_path / "metadata.sqlite"))
    shutil.copy(source.metadata_path, config.metadata_path)
    another_run_starts(config, "a-later-run")
    runs = run_history.history(metadata.connection_config(config), config.pipeline_name)
    assert len(runs) >= 2 and runs[-1].run_id == "a-later-run"
    page = report.write(config, tmp_path, run_id=runs[0].run_id)
    assert page.name == pages.page_name(runs[0].run_id)
    index = (tmp_path / "index.html").read_text()
    assert all(run.run_id in index for run in runs), index
    flags = [*config.as_flags(), "--output-dir", str(tmp_path)]
    assert report.main([*flags, "--run-id", "no-such-run"]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err


def test_the_lineage_starts_at_the_raw_export(e2e):
    (raw_export, source), (span, where) = report.build(e2e[0]).lineage[:2]
    assert raw_export == "raw export" and source.startswith(
        "complaints_2015-01_2015-03.csv.gz (sha256 "
    ), source
    assert span == "span" and where == f"{SPAN_2015} ({e2e[0].data_root}/span-{SPAN_2015})"
