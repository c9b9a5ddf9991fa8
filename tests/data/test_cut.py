"""An earlier download cut from a later export, by day received."""

import csv

from data import cut, prepare

EXPORT_2015 = prepare.RAW_DIR / "complaints_2015-01_2015-03.csv.gz"


def test_the_cut_holds_the_rows_received_through_the_day_unchanged(tmp_path):
    written = cut.received_through(EXPORT_2015, "2015-01-31", tmp_path / "jan.csv")
    text, _ = prepare.decode(EXPORT_2015.read_bytes(), EXPORT_2015)
    header, *rows = list(csv.reader(text.splitlines()))
    received = header.index("Date received")
    expected = [r for r in rows if prepare.parse_date(r[received]) <= "2015-01-31"]
    with (tmp_path / "jan.csv").open(newline="") as f:
        assert list(csv.reader(f)) == [header, *expected]
    assert written == len(expected) == 12600
    # Prepared, it is the span of its newest day; outcomes final 35 days before.
    report = prepare.prepare_export(tmp_path / "jan.csv", tmp_path / "span")
    assert (report.span, report.outcome_final_through) == (20150131, "2014-12-27")


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert (
        cut.main(
            [
                str(tmp_path / "none.csv"),
                "--through",
                "2015-01-31",
                "--output",
                str(tmp_path / "out.csv"),
            ]
        )
        == 2
    )
    assert "No such file" in capsys.readouterr().err
    (tmp_path / "dateless.csv").write_text("Product,Issue\nMortgage,x\n")
    assert (
        cut.main(
            [
                str(tmp_path / "dateless.csv"),
                "--through",
                "2015-01-31",
                "--output",
                str(tmp_path / "out.csv"),
            ]
        )
        == 2
    )
    assert "no column maps to 'date_received'" in capsys.readouterr().err
