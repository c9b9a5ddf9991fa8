"""A smoke run of the benchmark entry point on a tiny setting, so it cannot
rot. It asserts that every section is produced from real runs, never a timing."""

import re

import pytest

from bench import run
from tests.conftest import SPAN_2014, SPAN_2015

# The bench trains on the newest export as downloaded at the end of the month
# before its last: the 2015 export through February.
CUT_SPAN = 20150228

pytestmark = pytest.mark.e2e


def test_bench_writes_every_section(tmp_path, capsys):
    output = tmp_path / "benchmarks.md"
    assert (
        run.main(
            [
                "--rows",
                "1500",
                "--train-steps",
                "30",
                "--skip-multiprocessing",
                "--serving-seconds",
                "0.2",
                "--work-dir",
                str(tmp_path / "work"),
                "--output",
                str(output),
            ]
        )
        == 0
    )
    text = output.read_text()
    assert text in capsys.readouterr().out
    for heading in (
        "## Pipeline cost and cache",
        "## Overhead against a bare script",
        "## Serving: the pushed SavedModel in-process",
        "## Model quality",
        f"### test split of span {CUT_SPAN}",
        f"### outcomes final after 2015-02-28: span {SPAN_2015}",
        "## Attempts: features against the baselines",
    ):
        assert heading in text
    assert "are excluded (" in text  # the label rule, stated with the bench numbers
    # The 2014 export holds no final outcome: no out-of-time test set, said.
    assert f"Span {SPAN_2014} (complaints_2014-10_2014-11.csv.gz) holds no final outcome" in text
    assert f"### all of span {SPAN_2014}" not in text
    # The second re-run is served from cache, read back from ML Metadata.
    assert re.search(r"\| Transform \| [\d.]+ \| [\d.]+ \(cached\) \|", text), text
    for batch in (1, 32, 256):
        for case in ("serving_default", "model only", r"parse \+ Transform only"):
            assert re.search(rf"\| {case} \([^)]*\) \| {batch} \|", text), (case, batch)
        assert re.search(rf"\| {batch} \| \d+\.\d\dx \| \d+% \|", text), batch
    # Every model on both test sets.
    for model in ("pipeline model", "majority class", "logistic regression", "gradient-boosted"):
        assert len(re.findall(rf"\| {model}[^|]*\| [\d,]+ \| 0\.\d{{3}} \|", text)) == 2, model
    # The pipeline model's calibration: ten bins, on each test set.
    assert text.count("Calibration of the pipeline model (serving_default)") == 2
    assert len(re.findall(r"^\| 10 \| [\d,]+ \| [01]\.\d{3} \| [01]\.\d{3} \|", text, re.M)) == 2
    # Every feature set on both test sets, the last the pipeline's.
    from bench import attempts

    for label, _ in attempts.feature_sets():
        assert len(re.findall(rf"^\| {re.escape(label)} \| ", text, re.M)) == 2, label
    # The majority-class baseline ranks nothing: its AUC is exactly 0.5.
    assert "| majority class (train base rate) |" in text and "| 0.500 |" in text
