"""The label-maturity table: the Wilson interval, and the weekly counts of a
small export written as CFPB writes one."""

import math

import pytest

from bench import label_maturity
from tests.conftest import real_export, write_csv


def test_the_wilson_interval_matches_its_textbook_values():
    # 20 of 100: 0.1333 .. 0.2888 (Wilson 1927; e.g. Newcombe 1998, table I method 3).
    low, high = label_maturity.wilson(20, 100)
    assert low == pytest.approx(0.1333, abs=1e-4)
    assert high == pytest.approx(0.2888, abs=1e-4)
    assert all(math.isnan(v) for v in label_maturity.wilson(0, 0))


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
