"""The label-maturity table: the weekly counts of a small export written as
CFPB writes one."""

import pytest

from bench import label_maturity
from tests.conftest import real_export, write_csv


def test_weeks_count_open_complaints_apart_and_read_each_outcome(tmp_path):
    header, rows = real_export()
    at = {name: header.index(name) for name in header}
    kept = []
    for row, (received, response, disputed) in zip(
        rows,
        [
            ("01/05/2015", "Closed with explanation", "Yes"),
            ("01/06/2015", "Closed with explanation", "No"),
            ("01/07/2015", "Closed with explanation", ""),
            ("01/08/2015", "In progress", ""),
            ("01/14/2015", "Closed", ""),
        ],
        strict=False,
    ):
        row = list(row)
        row[at["Date received"]] = received
        row[at["Company response"]] = response
        row[at["Consumer disputed?"]] = disputed
        kept.append(row)
    export = write_csv(tmp_path / "complaints.csv", header, kept)

    newest, weeks = label_maturity.weekly(export)
    assert newest == "2015-01-14"
    first, second = weeks
    assert (first["week"], first["rows"], first["responded"]) == ("2015-01-05", 4, 3)
    assert first["open"] == pytest.approx(0.25)
    assert (first["yes"], first["no"], first["empty"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert (second["week"], second["rows"], second["yes"], second["empty"]) == (
        "2015-01-12",
        1,
        0.0,
        1.0,
    )
