import csv
import json

import pytest

from data import prepare

EXPORT_2014 = prepare.RAW_DIR / "complaints_2014-10_2014-11.csv.gz"
EXPORT_2015 = prepare.RAW_DIR / "complaints_2015-01_2015-03.csv.gz"


def _read_span(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_export(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_both_vintages_map_onto_the_canonical_columns(tmp_path):
    reports = prepare.prepare_all(prepare.RAW_DIR, tmp_path)

    assert [r.source for r in reports] == [EXPORT_2014.name, EXPORT_2015.name]
    for report in reports:
        rows = _read_span(prepare.span_dir(tmp_path, report.span) / prepare.SPAN_FILE_NAME)
        assert tuple(rows[0].keys()) == prepare.CANONICAL_COLUMNS
        assert len(rows) == report.rows_written
        assert {r["consumer_disputed"] for r in rows} == {"0", "1"}
        assert all(len(r["date_received"]) == 10 for r in rows)  # ISO dates

    span_2014, span_2015 = reports
    # The 2014 export has one truncated row; it is counted, not silently lost.
    assert span_2014.rows_read == 8340
    assert span_2014.rows_written == 8339
    assert span_2014.rejected == {"wrong field count (expected 14)": 1}
    # The 2015 export has no Company / Submitted via columns: written empty.
    assert span_2015.missing_columns == ["company", "submitted_via"]
    assert span_2015.rows_written == 28156
    # Label: 4,708 `Yes` among 28,156 rows (16.7%, as the book reports).
    assert span_2015.positive_rows == 4708


def test_2015_zip_codes_regain_their_leading_zeros(tmp_path):
    report = prepare.prepare_all(prepare.RAW_DIR, tmp_path)[1]
    rows = _read_span(prepare.span_dir(tmp_path, 2) / prepare.SPAN_FILE_NAME)
    zips = [r["zip_code"] for r in rows if r["zip_code"]]
    assert all(len(z) == 5 and z.isdigit() for z in zips)
    # 2,274 four-digit, 88 three-digit, 5 two-digit and 1 one-digit ZIPs.
    assert report.fixed == {"zip_code padded or unmasked": 2368}
    assert sum(z.startswith("0") for z in zips) >= 2274


@pytest.mark.parametrize("raw,expected", [
    ("32219", "32219"), ("2134", "02134"), ("770XX", "77000"), ("770xx", "77000"),
    ("12345-6789", "12345"), ("", ""), ("ABCDE", None), ("1234567", None), ("7XX", None),
])
def test_zip_normalization(raw, expected):
    assert prepare._normalize_zip(raw) == expected


def test_later_vintage_headers_and_bad_rows_are_reported(tmp_path):
    # Headers as in later CFPB exports: renamed response column, narrative column.
    header = ["Date received", "Product", "Sub-product", "Issue", "Sub-issue",
              "Consumer complaint narrative", "Company", "State", "ZIP code",
              "Submitted via", "Company response to consumer", "Timely response?",
              "Consumer disputed?", "Complaint ID"]
    good = ["2016-05-01", "Mortgage", "", "Servicing", "", "long text", "Bank A", "NY",
            "100XX", "Web", "Closed with explanation", "Yes", "No", "1"]
    rows = [
        good,
        good[:-1],                                              # truncated row
        ["13/45/2016"] + good[1:],                              # bad date
        good[:12] + ["Maybe", "2"],                             # unknown label
        good[:1] + [""] + good[2:],                             # no product
        good[:8] + ["ABCDE"] + good[9:12] + ["Yes", "3"],       # bad zip: kept, blanked
    ]
    export = _write_export(tmp_path / "later.csv", header, rows)

    # Four bad rows in six would be refused (see below); here every kind is counted.
    report = prepare.prepare_export(export, tmp_path / "span-3", span=3, max_rejected_fraction=1)

    assert report.rows_read == 6
    assert report.rows_written == 2
    assert report.rejected == {
        "wrong field count (expected 14)": 1,
        "date_received unparseable": 1,
        "consumer_disputed not Yes/No/empty (e.g. 'Maybe')": 1,
        "product empty": 1,
    }
    assert report.fixed == {"zip_code invalid, written empty": 1,
                            "zip_code padded or unmasked": 1}
    written = _read_span(tmp_path / "span-3" / prepare.SPAN_FILE_NAME)
    assert written[0]["company_response"] == "Closed with explanation"
    assert written[0]["zip_code"] == "10000"
    assert written[0]["date_received"] == "2016-05-01"
    assert [r["consumer_disputed"] for r in written] == ["0", "1"]
    assert written[1]["zip_code"] == ""
    assert "rejected" in report.summary() and "Maybe" in report.summary()


@pytest.mark.parametrize("content,message", [
    ("", "no header row"),
    ("Product,Issue\nMortgage,Servicing\n", "no column maps to 'sub_product', .*'consumer_disputed'"),
    ("Product,Sub-product,Issue,Sub-issue,State,ZIP code,Date received,Company response,"
     "Timely response?,Consumer disputed?\n", "no usable rows"),  # header only
])
def test_unusable_exports_fail_loudly(tmp_path, content, message):
    export = tmp_path / "broken.csv"
    export.write_text(content)
    with pytest.raises(prepare.PreparationError, match=message):
        prepare.prepare_export(export, tmp_path / "span-1", span=1)


def _real_rows(n):
    """Header and the first n rows of the 2015 export, as an export would have them."""
    text = prepare._decode(EXPORT_2015.read_bytes(), EXPORT_2015)
    rows = list(csv.reader(text.splitlines()))
    return rows[0], rows[1:n + 1]


@pytest.mark.parametrize("breakage,message", [
    ("label", r"50 of 100 rows rejected, more than 5%: .*consumer_disputed not Yes/No/empty"),
    ("zip", r"zip_code: 100 of 100 values are not ZIP codes"),
    ("issue_column", r"required column\(s\) missing: no column maps to 'issue'"),
])
def test_exports_broken_beyond_quirks_are_refused(tmp_path, breakage, message):
    header, rows = _real_rows(100)
    if breakage == "issue_column":
        keep = [i for i, h in enumerate(header) if h != "Issue"]
        header, rows = [header[i] for i in keep], [[r[i] for i in keep] for r in rows]
    else:
        column = header.index("Consumer disputed?" if breakage == "label" else "ZIP code")
        for i, row in enumerate(rows):
            if breakage == "zip" or i % 2:  # half the labels: more than the 5% allowed
                row[column] = "unknown" if breakage == "label" else "N/A"
    export = _write_export(tmp_path / "broken.csv", header, rows)
    with pytest.raises(prepare.PreparationError, match=message):
        prepare.prepare_export(export, tmp_path / "span-3", span=3)
    assert not (tmp_path / "span-3").exists()


def test_unchanged_spans_are_not_rewritten(tmp_path):
    # ExampleGen fingerprints its input files; rewriting them would defeat caching.
    prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=500)
    span_file = prepare.span_dir(tmp_path, 1) / prepare.SPAN_FILE_NAME
    before = span_file.stat().st_mtime_ns

    reports = prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=500)

    assert span_file.stat().st_mtime_ns == before
    assert reports[0].rows_written == 500
    # A different sample size is a different span content: it is rewritten.
    prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=400)
    assert len(_read_span(span_file)) == 400
    assert json.loads((span_file.parent / prepare.REPORT_FILE_NAME).read_text())["max_rows"] == 400


def test_max_rows_samples_across_the_whole_export(tmp_path):
    prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=1000)
    dates = sorted(r["date_received"] for r in
                   _read_span(prepare.span_dir(tmp_path, 2) / prepare.SPAN_FILE_NAME))
    # The export covers 2015-01-01 .. 2015-03-09; the sample must too.
    assert dates[0] < "2015-01-10" and dates[-1] > "2015-03-01"


def test_cli_prints_the_report(tmp_path, capsys):
    assert prepare.main(["--spans-dir", str(tmp_path), "--max-rows", "100"]) == 0
    out = capsys.readouterr().out
    assert "span 1 <- complaints_2014-10_2014-11.csv.gz: 100 rows written" in out
    assert "columns absent in this export, written empty: company, submitted_via" in out
