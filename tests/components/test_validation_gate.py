"""Bad data stops the run before Transform, and the served model stays.

Each case is a new span built from real rows of the end-to-end run's data,
broken in one way, run through the Beam runner against a copy of that run's
spans and pushed model. Raw exports broken the same ways are refused earlier,
by data preparation (tests/data/test_prepare.py and the last test here).
"""

import csv
import shutil
from pathlib import Path

import pytest

from data import prepare
from tests.conftest import (
    NEW_SPAN,
    SPAN_2014,
    SPAN_2015,
    completed_component_types,
    run_beam_runner,
    small_config,
    tree_digest,
)

pytestmark = pytest.mark.e2e

# Resolvers record executions too; nothing from Transform on may.
UP_TO_VALIDATION = {
    "CsvExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "Resolver",
}


@pytest.fixture(scope="module")
def real_rows(e2e):
    """Header and 1,000 real rows of the e2e run's prepared 2015 span."""
    path = prepare.span_dir(Path(e2e[0].data_root), SPAN_2015) / prepare.SPAN_FILE_NAME
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return list(rows[0]), rows[:1000]


def _write(path: Path, header, rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _missing_column(path, header, rows):
    _write(path, [h for h in header if h != "issue"], rows)


def _text_in_zip_code(path, header, rows):
    _write(path, header, [{**r, "zip_code": "N/A"} for r in rows])


def _empty_file(path, header, rows):
    path.write_text("")


def _header_only(path, header, rows):
    _write(path, header, [])


def _unknown_labels(path, header, rows):
    _write(path, header, [{**r, "consumer_disputed": "unknown"} for r in rows])


@pytest.mark.parametrize(
    "write_span, expected",
    [
        (_missing_column, ["issue: Column dropped"]),
        (_text_in_zip_code, ["zip_code: ", "INT"]),
        (_empty_file, [f"span-{NEW_SPAN}/*.csv", "train: (dataset): Too few examples: 0 examples"]),
        (
            _header_only,
            [f"span-{NEW_SPAN}/*.csv", "train: (dataset): Too few examples: 0 examples"],
        ),
        (_unknown_labels, ["consumer_disputed: "]),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_a_broken_span_stops_the_run_before_transform(
    e2e, real_rows, tmp_path, write_span, expected
):
    source, _ = e2e
    shutil.copytree(source.data_root, tmp_path / "spans")
    shutil.copytree(source.serving_model_dir, tmp_path / "serving_model")
    span_dir = prepare.span_dir(tmp_path / "spans", NEW_SPAN)
    span_dir.mkdir()
    write_span(span_dir / prepare.SPAN_FILE_NAME, *real_rows)
    config = small_config(tmp_path)
    served_before = tree_digest(tmp_path / "serving_model")

    code, output = run_beam_runner(config.as_flags())

    assert code == 1, output
    for text in expected:
        assert text in output, output
    # One message, said once, no traceback.
    assert output.count("data validation stopped the run") == 1, output
    assert "Traceback" not in output, output
    executed = completed_component_types(config)
    assert executed <= UP_TO_VALIDATION, executed
    assert "  > Transform" not in output
    assert tree_digest(tmp_path / "serving_model") == served_before


def test_a_flood_of_unknown_products_stops_the_run_before_transform(stopped_by_validation):
    """The same checks on the run the report's tests read too (tests/conftest.py)."""
    config, code, output, served_before = stopped_by_validation
    assert code == 1, output
    for text in ("product: Unexpected string values", "Crypto-asset services"):
        assert text in output, output
    assert output.count("data validation stopped the run") == 1, output
    assert "Traceback" not in output, output
    assert completed_component_types(config) <= UP_TO_VALIDATION
    assert "  > Transform" not in output
    assert tree_digest(Path(config.serving_model_dir)) == served_before


def test_drift_is_reported_and_can_block(e2e, real_rows, tmp_path):
    """A new span of real rows of one product only, after the e2e run's 2015
    statistics: the previous validated span's statistics are the baseline, and the
    product mix moved far beyond its threshold (0.05)."""
    source, _ = e2e
    shutil.copytree(source.data_root, tmp_path / "spans")
    shutil.copytree(source.serving_model_dir, tmp_path / "serving_model")
    shutil.copy(source.metadata_path, tmp_path / "metadata.sqlite")  # the e2e run's history
    span_dir = prepare.span_dir(tmp_path / "spans", NEW_SPAN)
    span_dir.mkdir()
    header, rows = real_rows
    _write(
        span_dir / prepare.SPAN_FILE_NAME,
        header,
        [r for r in rows if r["product"] == "Debt collection"],
    )
    config = small_config(tmp_path, drift_blocks=True)
    served_before = tree_digest(tmp_path / "serving_model")

    code, output = run_beam_runner(config.as_flags() + ["--drift-blocks"])

    assert code == 1, output
    drifted = [line for line in output.splitlines() if line.startswith("  drift: ")]
    assert any(line.startswith("  drift: product: ") for line in drifted), output
    assert "  > DataValidationGate" in output and "  > Transform" not in output
    assert tree_digest(tmp_path / "serving_model") == served_before


def test_a_broken_raw_export_is_refused_before_the_pipeline(e2e, tmp_path):
    source, _ = e2e
    raw = tmp_path / "raw"
    shutil.copytree(prepare.RAW_DIR, raw)
    (raw / "complaints_2016.csv").write_text("")
    shutil.copytree(source.serving_model_dir, tmp_path / "serving_model")
    config = small_config(tmp_path)
    served_before = tree_digest(tmp_path / "serving_model")

    code, output = run_beam_runner(config.as_flags() + [f"--raw-data-dir={raw}"])

    assert code == 1
    assert "error: complaints_2016.csv: file is empty (no header row)" in output
    assert "Running pipeline" not in output
    assert tree_digest(tmp_path / "serving_model") == served_before


def test_drift_thresholds_on_the_full_real_exports(tmp_path):
    """The schema's thresholds against the whole 2014 and 2015 exports, each
    as asked at the prediction moment (every complaint the company responded
    to, final or open; the 2014 export holds no final outcome): nothing moved
    beyond its threshold (the largest change is sub_issue's 0.032 against
    0.05; docs/data-validation.md)."""
    import tensorflow_data_validation as tfdv

    from components import validation_gate
    from data import schema

    prepare.prepare_all(prepare.RAW_DIR, tmp_path / "spans")
    columns = [c for c in prepare.OPEN_COLUMNS if c != prepare.ID_COLUMN]
    statistics = []
    for span in (SPAN_2014, SPAN_2015):
        directory = prepare.span_dir(tmp_path / "spans", span)
        responded = [
            {c: r[c] for c in columns}
            for path in (directory / prepare.SPAN_FILE_NAME, prepare.open_file(directory))
            if path.exists()
            for r in csv.DictReader(path.open(newline=""))
            if r["company_response"] not in prepare.OPEN_RESPONSES
        ]
        path = tmp_path / f"{span}.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(responded)
        statistics.append(tfdv.generate_statistics_from_csv(str(path)))
    curated = tfdv.load_schema_text(str(schema.SCHEMA_PATH))
    assert validation_gate.measure_drift(statistics[1], statistics[0], curated) == []

    # The measurement itself: with every threshold at 0, each feature's change.
    for feature in curated.feature:
        comparator = feature.drift_comparator
        for kind in ("infinity_norm", "jensen_shannon_divergence"):
            if comparator.HasField(kind):
                getattr(comparator, kind).threshold = 0.0
    drifted = {
        d["feature"]: d["detail"]
        for d in validation_gate.measure_drift(statistics[1], statistics[0], curated)
    }
    assert "0.0323" in drifted["sub_issue"] and "0.0101" in drifted["company_response"]
