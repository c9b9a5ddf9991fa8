"""Outcomes joined with logged requests (real complaints replayed through the
client and the logging proxy, tests/feedback/traffic.py) into a labelled
export that data.prepare turns into a span passing the curated schema."""

import csv
import dataclasses
import datetime
import json
from pathlib import Path

import pytest

from data import prepare
from feedback import join, prediction_log
from models import features
from pipeline import node_ids
from tests.conftest import small_config
from tests.feedback.traffic import EARLIER_ROWS

pytestmark = pytest.mark.e2e

ANSWERED = 400  # complaints of the logged traffic whose outcome came back


def _outcome_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == join.OUTCOME_COLUMNS
    return rows[1:]


def _join(traffic, outcomes: Path, raw_dir: Path, *more: str) -> int:
    return join.main(
        [
            "--outcomes",
            str(outcomes),
            "--raw-data-dir",
            str(raw_dir),
            "--prediction-log-prefix",
            traffic.config.prediction_log_prefix,
            *more,
        ]
    )


def _write(path: Path, rows) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(join.OUTCOME_COLUMNS)
        writer.writerows(rows)
    return path


def test_outcomes_join_into_a_span_that_passes_validation(feedback_traffic, tmp_path, capsys):
    matured = feedback_traffic.matured
    known = _outcome_rows(matured.outcomes)  # a later export's real outcomes, learned today
    assert ANSWERED < len(known) < EARLIER_ROWS  # complaints still in progress have none yet
    answered = known[:ANSWERED]
    flipped = {"Yes": "No", "No": "Yes"}
    duplicates = answered[:20]
    conflicting = [[i, flipped[d], day] for i, d, day in answered[20:25]]
    too_early = {row[0] for row in answered[25:35]}
    unknown = [[f"unknown-{n}", "No", answered[0][2]] for n in range(15)]
    invalid = [[answered[0][0], "maybe", answered[0][2]], [answered[1][0], "Yes", "yesterday"]]
    rows = [[i, d, "2000-01-01" if i in too_early else day] for i, d, day in answered]
    outcomes = _write(
        tmp_path / "outcomes.csv", rows + duplicates + conflicting + unknown + invalid
    )

    raw_dir = tmp_path / "raw"
    assert _join(matured, outcomes, raw_dir) == 0
    printed = capsys.readouterr().out
    (export,) = raw_dir.glob("feedback-*.csv")

    valid = {
        i: d for i, d, _ in answered if i not in too_early and i not in {c[0] for c in conflicting}
    }
    with export.open(newline="") as f:
        joined = list(csv.DictReader(f))
    assert {r["complaint_id"]: r["consumer_disputed"] for r in joined} == valid
    assert len(joined) == len(valid) == ANSWERED - 5 - 10
    # Features are the ones the model was asked with: the export's own values,
    # dates included; the complaints' received days name the export.
    sent = {r["complaint_id"]: r for r in prepare.complaints_as_asked(matured.export)}
    for row in joined:
        for name in features.RAW_INPUT_NAMES:
            assert row[name] == sent[row["complaint_id"]][name], name
    received = sorted(r["date_received"].replace("-", "") for r in joined)
    assert export.name == f"feedback-{received[0]}-{received[-1]}.csv"

    counts = json.loads((raw_dir / f"{export.name}.join.json").read_text())
    assert {f.name: counts[f.name] for f in dataclasses.fields(join.JoinCounts)} == {
        "logged_complaints": EARLIER_ROWS,
        "requests_without_id": 0,
        "repeated_requests": 0,
        "already_joined": 0,
        "outcome_rows": len(rows) + 20 + 5 + 15 + 2,
        "invalid_outcomes": 2,
        "duplicate_outcomes": 20,
        "conflicting_outcomes": 5,
        "unmatched_outcomes": 15,
        "outcome_before_prediction": 10,
        "awaiting_outcome": EARLIER_ROWS - ANSWERED,
        "joined": len(valid),
        "disputed": sum(d == "Yes" for d in valid.values()),
    }
    assert "outcome before prediction" in printed and f"{len(valid):>7,}" in printed

    # The pipeline's own preparation takes it like any export...
    spans_dir = tmp_path / "spans"
    (report,) = prepare.prepare_all(raw_dir, spans_dir)
    assert report.span == int(received[-1])
    assert report.rows_written == len(valid) and report.rows_rejected == 0
    assert report.positive_rows == counts["disputed"]
    # ...and the pipeline's own components, up to its validation gate, pass it.
    _validate_with_the_pipeline(small_config(tmp_path / "validate", data_root=str(spans_dir)))

    # The same outcomes again: every complaint is in the first export already.
    assert _join(matured, outcomes, raw_dir) == 1
    assert "only 0 complaint(s) joined" in capsys.readouterr().err
    # Late outcomes, for complaints asked on the day the first export ends on:
    # a second export ending that day would not be a newer span.
    answered_ids = {r[0] for r in answered}
    awaiting = [
        c["complaint_id"]
        for r in prediction_log.read_logs(matured.prefix)
        for c in prediction_log.logged_complaints(r)
        if c["complaint_id"] not in answered_ids
    ]
    assert len(awaiting) == EARLIER_ROWS - ANSWERED
    days = {prediction_log.logged_day(r) for r in prediction_log.read_logs(matured.prefix)}
    late = [[i, "No", max(days).isoformat()] for i in awaiting[: prepare.MIN_SPAN_ROWS + 20]]
    late_file = _write(tmp_path / "late.csv", late)
    assert _join(matured, late_file, raw_dir) == 1
    last = datetime.date.fromisoformat(max(r["date_received"] for r in joined))
    assert f"{export.name} already ends on {last}" in capsys.readouterr().err
    assert list(raw_dir.glob("feedback-*.csv")) == [export]


def _validate_with_the_pipeline(config) -> None:
    """The pipeline's own graph, run by TFX's Beam runner up to its validation
    gate (a partial run: CsvExampleGen, StatisticsGen, ImportSchemaGen,
    ExampleValidator, the gate); the gate fails the run on any anomaly."""
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner
    from tfx.orchestration.pipeline import RunOptions

    from pipeline import pipeline
    from reporting import summary
    from settings import metadata

    BeamDagRunner().run(
        pipeline.create_pipeline(config, metadata.connection_config(config)),
        run_options=RunOptions(to_nodes=["DataValidationGate"]),
    )
    up_to_the_gate = {
        "CsvExampleGen",
        node_ids.STATISTICS_RESOLVER,
        "StatisticsGen",
        "ImportSchemaGen",
        "ExampleValidator",
        "DataValidationGate",
    }
    run = summary.run_summary(config)
    assert {n.node_id: n.state for n in run.nodes.values()} == dict.fromkeys(
        up_to_the_gate, "finished"
    )
    assert set(run.split_rows) >= {"train", "eval"}
    assert not any(run.anomalies.values()), run.anomalies
    assert run.validation_report is not None


def test_too_few_outcomes_and_a_foreign_file_are_refused(feedback_traffic, tmp_path, capsys):
    known = _outcome_rows(feedback_traffic.matured.outcomes)
    few = _write(tmp_path / "few.csv", known[: prepare.MIN_SPAN_ROWS - 1])
    elsewhere = tmp_path / "raw"
    assert _join(feedback_traffic.matured, few, elsewhere) == 1
    assert f"a span needs at least {prepare.MIN_SPAN_ROWS}" in capsys.readouterr().err
    assert not elsewhere.exists()
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("Complaint ID,Consumer disputed?\n1,Yes\n")
    assert _join(feedback_traffic.matured, foreign, elsewhere) == 2
    assert "the header must be complaint_id,disputed,date_learned" in capsys.readouterr().err
