"""A smoke run of the benchmark entry point on a tiny setting, so it cannot
rot. It asserts that every section is produced from real runs, never a timing."""
import re

import pytest

from bench import run

pytestmark = pytest.mark.e2e


def test_bench_writes_every_section(tmp_path, capsys):
    output = tmp_path / "benchmarks.md"
    assert run.main(["--rows", "1500", "--train-steps", "30", "--skip-multiprocessing",
                     "--serving-seconds", "0.2", "--work-dir", str(tmp_path / "work"),
                     "--output", str(output)]) == 0
    text = output.read_text()
    assert text in capsys.readouterr().out
    for heading in ("## Pipeline cost and cache", "## Overhead against a bare script",
                    "## Serving: the pushed SavedModel in-process",
                    "## Model quality on the pipeline's test split"):
        assert heading in text
    # The second re-run is served from cache, read back from ML Metadata.
    assert re.search(r"\| Transform \| [\d.]+ \| [\d.]+ \(cached\) \|", text), text
    for batch in (1, 32, 256):
        assert re.search(rf"\| serving_default \(tf.Example in\) \| {batch} \|", text)
    for model in ("pipeline model", "majority class", "logistic regression", "gradient-boosted"):
        assert re.search(rf"\| {model}[^|]*\| [\d,]+ \| 0\.\d{{3}} \|", text), model
    # The majority-class baseline ranks nothing: its AUC is exactly 0.5.
    assert "| majority class (train base rate) |" in text and "| 0.500 |" in text
