import csv
import hashlib
import json
import shutil
import subprocess
import sys

import pytest

from data import prepare
from tests.conftest import SPAN_2014, SPAN_2015, csv_text, real_export, write_csv

EXPORT_2014 = prepare.RAW_DIR / "complaints_2014-10_2014-11.csv.gz"
EXPORT_2015 = prepare.RAW_DIR / "complaints_2015-01_2015-03.csv.gz"


def _read_span(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_both_vintages_map_onto_the_canonical_columns(tmp_path):
    reports = prepare.prepare_all(prepare.RAW_DIR, tmp_path)

    assert [(r.span, r.source) for r in reports] == [
        (SPAN_2014, EXPORT_2014.name),
        (SPAN_2015, EXPORT_2015.name),
    ]
    for report in reports:
        directory = prepare.span_dir(tmp_path, report.span)
        open_rows = _read_span(prepare.open_file(directory))
        assert tuple(open_rows[0].keys()) == prepare.OPEN_COLUMNS  # no label
        assert len(open_rows) == report.open_rows_written
        assert all(r[prepare.ID_COLUMN] for r in open_rows)
        assert all(len(r["date_received"]) == 10 for r in open_rows)  # ISO dates

    span_2014, span_2015 = reports
    # The 2014 export has one truncated row; it is counted, not silently lost.
    assert span_2014.rows_read == 8340
    assert span_2014.rejected == {"wrong field count (expected 14)": 1}
    # Read within five weeks of its complaints, it holds no final outcome:
    # a span to score, with nothing to train on (data/README.md).
    assert span_2014.outcome_final_through == "2014-10-09" < span_2014.first_date
    assert span_2014.excluded == {
        prepare.UNKNOWN_OUTCOME: 1758,
        prepare.NOT_FINAL_OUTCOME: 8340 - 1 - 1758,
    }
    assert span_2014.rows_written == 0 and span_2014.open_rows_written == 8339
    assert not (prepare.span_dir(tmp_path, SPAN_2014) / prepare.SPAN_FILE_NAME).exists()
    assert any(n.startswith("for scoring only: 0 rows") for n in span_2014.notes)
    # The 2015 export has no Company / Submitted via columns: written empty.
    assert span_2015.missing_columns == ["company", "submitted_via"]
    # Outcomes are final for complaints received up to 35 days before its
    # newest one (2015-03-19); the younger ones and the open ones are to score.
    assert span_2015.outcome_final_through == "2015-02-12"
    assert span_2015.excluded == {prepare.UNKNOWN_OUTCOME: 2690, prepare.NOT_FINAL_OUTCOME: 8033}
    assert span_2015.rows_written == 28156 - 2690 - 8033 == 17433
    assert span_2015.open_rows_written == 2690 + 8033
    assert span_2015.positive_rows == 3359  # 19.3%, the rate of the matured weeks
    assert (span_2015.first_date, span_2015.last_date) == ("2015-01-01", "2015-03-19")
    rows = _read_span(prepare.span_dir(tmp_path, SPAN_2015) / prepare.SPAN_FILE_NAME)
    assert tuple(rows[0].keys()) == prepare.CANONICAL_COLUMNS
    assert len(rows) == span_2015.rows_written
    assert {r["consumer_disputed"] for r in rows} == {"0", "1"}
    assert max(r["date_received"] for r in rows) == "2015-02-12"


def test_2015_zip_codes_regain_their_leading_zeros(tmp_path):
    report = prepare.prepare_all(prepare.RAW_DIR, tmp_path)[1]
    directory = prepare.span_dir(tmp_path, SPAN_2015)
    rows = _read_span(directory / prepare.SPAN_FILE_NAME)
    rows += _read_span(prepare.open_file(directory))
    zips = [r["zip_code"] for r in rows if r["zip_code"]]
    assert all(len(z) == 5 and z.isdigit() for z in zips)
    # 2,368 short ZIPs in the export (2,274 four-digit, 88 three-digit, 5
    # two-digit, 1 one-digit).
    assert report.fixed == {"zip_code padded or unmasked": 2368}
    assert sum(z.startswith("0") for z in zips) >= 2000


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("32219", "32219"),
        ("2134", "02134"),
        ("770XX", "77000"),
        ("770xx", "77000"),
        ("12345-6789", "12345"),
        ("", ""),
        ("ABCDE", None),
        ("1234567", None),
        ("7XX", None),
    ],
)
def test_zip_normalization(raw, expected):
    assert prepare.normalize_zip(raw) == expected


def test_later_vintage_headers_and_bad_rows_are_reported(tmp_path, monkeypatch):
    # Headers as in later CFPB exports: renamed response column, narrative column.
    header = [
        "Date received",
        "Date sent to company",
        "Product",
        "Sub-product",
        "Issue",
        "Sub-issue",
        "Consumer complaint narrative",
        "Company",
        "State",
        "ZIP code",
        "Submitted via",
        "Company response to consumer",
        "Timely response?",
        "Consumer disputed?",
        "Complaint ID",
    ]
    good = [
        "2016-05-01",
        "05/03/2016",
        "Mortgage",
        "",
        "Servicing",
        "",
        "long text",
        "Bank A",
        "NY",
        "100XX",
        "Web",
        "Closed with explanation",
        "Yes",
        "No",
        "1",
    ]
    rows = [
        good,
        good[:-1],  # truncated row
        ["13/45/2016"] + good[1:],  # bad date
        good[:1] + ["soon"] + good[2:],  # bad date sent
        good[:13] + ["Maybe", "2"],  # unknown label
        good[:2] + [""] + good[3:],  # no product
        good[:9] + ["ABCDE"] + good[10:13] + ["Yes", "3"],  # bad zip: kept, blanked
    ]
    export = write_csv(tmp_path / "later.csv", header, rows)

    # Five bad rows in seven would be refused (see below); here every kind is counted.
    monkeypatch.setattr(prepare, "MIN_SPAN_ROWS", 1)
    report = prepare.prepare_export(export, tmp_path / "span", max_rejected_fraction=1)

    assert report.rows_read == 7
    assert report.rows_written == 2
    assert report.rejected == {
        "wrong field count (expected 15)": 1,
        "date_received unparseable": 1,
        "date_sent_to_company unparseable": 1,
        "consumer_disputed not Yes/No/empty (e.g. 'Maybe')": 1,
        "product empty": 1,
    }
    assert report.fixed == {"zip_code invalid, written empty": 1, "zip_code padded or unmasked": 1}
    assert report.span == 20160501
    written = _read_span(tmp_path / "span" / prepare.SPAN_FILE_NAME)
    assert written[0]["company_response"] == "Closed with explanation"
    assert written[0]["zip_code"] == "10000"
    assert written[0]["date_received"] == "2016-05-01"
    assert written[0]["date_sent_to_company"] == "2016-05-03"
    assert [r["consumer_disputed"] for r in written] == ["0", "1"]
    assert written[1]["zip_code"] == ""
    assert "rejected" in report.summary() and "Maybe" in report.summary()


@pytest.mark.parametrize(
    "content,message",
    [
        ("", "no header row"),
        (
            "Product,Issue\nMortgage,Servicing\n",
            "no column maps to 'company_response', .*'sub_product', .*'consumer_disputed'",
        ),
        (
            "Product,Sub-product,Issue,Sub-issue,State,ZIP code,Date received,"
            "Date sent to company,Company response,Timely response?,Consumer disputed?\n",
            "no usable rows",
        ),  # header only
    ],
)
def test_unusable_exports_fail_loudly(tmp_path, content, message):
    export = tmp_path / "broken.csv"
    export.write_text(content)
    with pytest.raises(prepare.PreparationError, match=message):
        prepare.prepare_export(export, tmp_path / "span")


def _real_rows(n=None, newest=None, explicit=False):
    """Header and real rows of the 2015 export with a response (at most n;
    received on or before `newest`, ISO; `explicit`: only rows labelled Yes
    or No, an export whose every outcome is final), as an export has them."""
    header, rows = real_export(EXPORT_2015.name)
    response, received = header.index("Company response"), header.index("Date received")
    label = header.index("Consumer disputed?")
    rows = [
        r
        for r in rows
        if r[response] != "In progress"
        and (newest is None or prepare.parse_date(r[received]) <= newest)
        and (r[label] or not explicit)
    ]
    return header, rows[:n]


@pytest.mark.parametrize(
    "breakage,message",
    [
        ("label", r"50 of 100 rows rejected, more than 5%: .*consumer_disputed not Yes/No/empty"),
        ("zip", r"zip_code: 100 of 100 values are not ZIP codes"),
        ("issue_column", r"required column\(s\) missing: no column maps to 'issue'"),
    ],
)
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
    export = write_csv(tmp_path / "broken.csv", header, rows)
    with pytest.raises(prepare.PreparationError, match=message):
        prepare.prepare_export(export, tmp_path / "span")
    assert not (tmp_path / "span").exists()


def test_unchanged_spans_are_not_rewritten(tmp_path):
    # ExampleGen fingerprints its input files; rewriting them would defeat caching.
    prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=500)
    span_file = prepare.span_dir(tmp_path, SPAN_2015) / prepare.SPAN_FILE_NAME
    before = span_file.stat().st_mtime_ns

    reports = prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=500)

    assert span_file.stat().st_mtime_ns == before
    assert reports[1].rows_written == 500 and reports[1].open_rows_written == 500


def test_another_row_cap_on_prepared_spans_is_refused(tmp_path):
    # Rewriting a span would leave ML Metadata's examples of it describing
    # other rows than its files; the window would train on those.
    prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=500)
    before = _digests(tmp_path)
    with pytest.raises(
        prepare.PreparationError,
        match=rf"is span {SPAN_2014}, prepared with --max-rows-per-span 500; this run asks "
        r"for 400\. A prepared span is never rewritten",
    ):
        prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=400)
    with pytest.raises(prepare.PreparationError, match="asks for unset"):
        prepare.prepare_all(prepare.RAW_DIR, tmp_path)
    assert _digests(tmp_path) == before


def test_a_torn_span_report_is_named_not_a_json_error(tmp_path):
    prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=500)
    report = prepare.span_dir(tmp_path, SPAN_2015) / prepare.REPORT_FILE_NAME
    report.write_text(report.read_text()[:40])  # a write cut short
    with pytest.raises(
        prepare.PreparationError,
        match=rf"{report}: not a readable span report .* delete {report.parent}",
    ):
        prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=500)


def _digests(spans_dir):
    return {
        p.relative_to(spans_dir): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(spans_dir.rglob("*"))
        if p.is_file()
    }


def test_a_backfilled_older_export_changes_no_existing_span(tmp_path):
    raw, spans = tmp_path / "raw", tmp_path / "spans"
    raw.mkdir()
    shutil.copy(EXPORT_2015, raw)
    assert [r.span for r in prepare.prepare_all(raw, spans)] == [SPAN_2015]
    before = _digests(spans)

    shutil.copy(EXPORT_2014, raw)  # sorts first by name: file order would renumber
    reports = prepare.prepare_all(raw, spans)

    assert [r.span for r in reports] == [SPAN_2014, SPAN_2015]
    after = _digests(spans)
    assert {k: v for k, v in after.items() if k.parts[0] == f"span-{SPAN_2015}"} == before


def test_overlapping_exports_train_on_each_complaint_once_its_outcome_is_final(tmp_path):
    # A real January-February cut of the 2015 export, next to the whole export.
    header, rows = _real_rows(newest="2015-02-28")
    raw, spans = tmp_path / "raw", tmp_path / "spans"
    raw.mkdir()
    write_csv(raw / "complaints_2015-01_2015-02.csv", header, rows)
    shutil.copy(EXPORT_2015, raw)

    cut, whole = prepare.prepare_all(raw, spans)

    # Oldest first: the cut trains on its complaints final by 2015-01-24, the
    # whole export gives those up...
    assert (cut.span, whole.span) == (20150228, SPAN_2015)
    assert cut.outcome_final_through == "2015-01-24"
    assert cut.rows_written + cut.open_rows_written == len(rows)
    assert whole.excluded["complaint already in span 20150228"] == cut.rows_written
    assert whole.rows_written == 17433 - cut.rows_written
    ids = [
        set((prepare.span_dir(spans, s) / prepare.IDS_FILE_NAME).read_text().split())
        for s in (cut.span, SPAN_2015)
    ]
    assert len(ids[0]) == cut.rows_written and len(ids[1]) == whole.rows_written
    assert not ids[0] & ids[1]
    assert "excluded" in whole.summary() and "20150228" in whole.summary()
    # ...and trains on those the cut still had open, now final.
    open_in_cut = {
        r[prepare.ID_COLUMN]: r["date_received"]
        for r in _read_span(prepare.open_file(prepare.span_dir(spans, cut.span)))
    }
    matured = {c for c, day in open_in_cut.items() if day <= whole.outcome_final_through}
    assert len(matured) > 1000 and matured <= ids[1]


def test_an_export_of_complaints_already_prepared_is_refused_as_too_small(tmp_path):
    raw, spans = tmp_path / "raw", tmp_path / "spans"
    raw.mkdir()
    shutil.copy(EXPORT_2015, raw)
    prepare.prepare_all(raw, spans)
    before = _digests(spans)
    # Complaints whose outcomes the whole export holds final, trained or open.
    header, rows = _real_rows(newest="2015-02-12")
    write_csv(raw / "again.csv", header, rows)

    with pytest.raises(
        prepare.PreparationError,
        match=rf"again.csv: too few rows for a span: 0 usable .*complaint already "
        rf"in span {SPAN_2015}",
    ):
        prepare.prepare_all(raw, spans)
    assert _digests(spans) == before


def test_two_different_exports_ending_on_the_same_day_are_refused(tmp_path):
    header, rows = _real_rows(300)
    raw = tmp_path / "raw"
    raw.mkdir()
    write_csv(raw / "a.csv", header, rows[:200])
    write_csv(raw / "b.csv", header, rows[:150] + rows[250:])
    with pytest.raises(
        prepare.PreparationError,
        match=r"b.csv: .* would be span 2015031\d, "
        r"which a.csv already is",
    ):
        prepare.prepare_all(raw, tmp_path / "spans")


def test_spans_numbered_by_file_order_are_refused(tmp_path):
    old = tmp_path / "spans" / "span-2"
    old.mkdir(parents=True)
    (old / prepare.REPORT_FILE_NAME).write_text("{}")
    with pytest.raises(prepare.PreparationError, match="delete .*spans once"):
        prepare.prepare_all(prepare.RAW_DIR, tmp_path / "spans")


def test_max_rows_samples_across_the_whole_export(tmp_path):
    prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=1000)
    dates = sorted(
        r["date_received"]
        for r in _read_span(prepare.span_dir(tmp_path, SPAN_2015) / prepare.SPAN_FILE_NAME)
    )
    # Its final outcomes cover 2015-01-01 .. 2015-02-12; the sample must too.
    assert dates[0] < "2015-01-10" and dates[-1] > "2015-02-05"


def _real_text(n=200):
    return csv_text(*_real_rows(n))


def test_windows_1252_exports_are_read_as_such(tmp_path):
    # A spreadsheet on Windows saves curly quotes and accents as cp1252 bytes.
    header, rows = _real_rows(200, explicit=True)
    issue = header.index("Issue")
    rows[0][issue] = "Loan servicing \u2019s caf\u00e9"
    export = write_csv(tmp_path / "windows.csv", header, rows, encoding="cp1252")
    with pytest.raises(UnicodeDecodeError):
        export.read_bytes().decode("utf-8")

    report = prepare.prepare_export(export, tmp_path / "span")

    assert report.encoding == "cp1252" and "read as cp1252" in report.summary()
    issues = [r["issue"] for r in _read_span(tmp_path / "span" / prepare.SPAN_FILE_NAME)]
    assert "Loan servicing \u2019s caf\u00e9" in issues


@pytest.mark.parametrize(
    "encode,message",
    [
        (lambda text: text.encode("utf-16"), "looks like UTF-16 or a binary file"),
        (
            lambda text: text.encode("utf-8").replace(b"Debt", b"D\x81bt"),
            r"neither UTF-8 nor Windows-1252/Latin-1 \(byte 0x81 at offset \d+",
        ),
        (lambda text: b"\x1f\x8b" + text.encode()[:50], "not a readable gzip file"),
    ],
)
def test_unreadable_encodings_are_refused(tmp_path, encode, message):
    export = tmp_path / ("broken.csv.gz" if "gzip" in message else "broken.csv")
    export.write_bytes(encode(_real_text()))
    with pytest.raises(prepare.PreparationError, match=message):
        prepare.prepare_export(export, tmp_path / "span")


def test_another_delimiter_is_named(tmp_path):
    export = tmp_path / "semicolons.csv"
    export.write_text(_real_text().replace(",", ";"))
    with pytest.raises(
        prepare.PreparationError,
        match="separated by semicolons, but CFPB exports are comma-separated",
    ):
        prepare.prepare_export(export, tmp_path / "span")


def test_too_few_rows_is_refused(tmp_path):
    # Every outcome final (labelled Yes or No), none open to score.
    header, rows = _real_rows(prepare.MIN_SPAN_ROWS - 1, explicit=True)
    export = write_csv(tmp_path / "tiny.csv", header, rows)
    with pytest.raises(
        prepare.PreparationError,
        match=rf"tiny.csv: too few rows for a span: {prepare.MIN_SPAN_ROWS - 1} "
        rf"usable \(at least {prepare.MIN_SPAN_ROWS} needed",
    ):
        prepare.prepare_export(export, tmp_path / "span")


def test_cli_errors_are_one_line_without_tensorflow(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "broken.csv").write_bytes(_real_text().encode("utf-16"))
    script = (
        "import sys; from data import prepare; "
        f"code = prepare.main(['--raw-data-dir', {str(raw)!r}, '--data-root', {str(tmp_path)!r}]); "
        "assert 'tensorflow' not in sys.modules; sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "broken.csv" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_prints_the_report(tmp_path, capsys):
    assert prepare.main(["--data-root", str(tmp_path), "--max-rows-per-span", "100"]) == 0
    out = capsys.readouterr().out
    assert (
        f"span {SPAN_2014} <- complaints_2014-10_2014-11.csv.gz (2014-10-10 .. 2014-11-13)" in out
    )
    assert "100 rows written" in out
    assert "columns absent in this export, written empty: company, submitted_via" in out


def test_complaints_as_asked_keep_open_complaints_and_ids():
    """What a served model is asked: every row, open complaints included, ZIPs
    normalized, the label rule not applied (it decides only what is trained on)."""
    export = prepare.RAW_DIR / "complaints_2014-10_2014-11.csv.gz"
    asked = list(prepare.complaints_as_asked(export))
    report = prepare.SpanReport(span=0, source=export.name, source_sha256="")
    text, _ = prepare.decode(export.read_bytes(), export)
    rows = list(prepare.canonical_rows(text, report))
    open_ones = [a for a in asked if a["company_response"] in prepare.OPEN_RESPONSES]
    # The export's one broken row (a wrong field count) is the only one left out.
    assert report.rows_rejected == 1 and len(asked) == len(rows) == report.rows_read - 1
    assert len(open_ones) == 1758
    assert all(a[prepare.ID_COLUMN] for a in asked)
    assert all(a["zip_code"] == "" or len(a["zip_code"]) == 5 for a in asked)


OLD, YOUNG = "2015-01-05", "2015-03-01"  # received before / after the final day
FINAL_DAY = "2015-02-12"


@pytest.mark.parametrize(
    "label, response, received, status",
    [
        ("Yes", "Closed with explanation", OLD, None),
        ("", "Closed", OLD, None),  # not disputed within the window
        ("", "Untimely response", OLD, None),
        ("No", "Closed", YOUNG, None),  # CFPB writes No once the window closed
        ("", "In progress", OLD, prepare.UNKNOWN_OUTCOME),
        ("", "Closed", YOUNG, prepare.NOT_FINAL_OUTCOME),  # not disputed so far
        ("Yes", "Closed", YOUNG, prepare.NOT_FINAL_OUTCOME),  # by age alone, label-blind
    ],
)
def test_the_label_rule(label, response, received, status):
    assert prepare.outcome_status(label, response, received, FINAL_DAY) == status
    with pytest.raises(KeyError):
        prepare.outcome_status("maybe", response, received, FINAL_DAY)


def test_an_export_that_states_every_outcome_is_final_at_any_age(tmp_path):
    # As feedback.join writes them: Yes or No once learned, never empty.
    header, rows = _real_rows(300, explicit=True)
    export = write_csv(tmp_path / "learned.csv", header, rows)
    report = prepare.prepare_export(export, tmp_path / "span")
    assert report.rows_written == 300 and report.open_rows_written == 0
    assert report.outcome_final_through == report.last_date
    # One empty label among them: empty means "not so far", the age rule holds.
    rows[0][header.index("Consumer disputed?")] = ""
    export = write_csv(tmp_path / "read-early.csv", header, rows)
    report = prepare.prepare_export(export, tmp_path / "span2")
    assert report.open_rows_written == 300 and report.rows_written == 0


def test_final_outcomes_are_what_the_feedback_loop_learns():
    outcomes = prepare.final_outcomes(EXPORT_2015)
    assert len(outcomes) == 17433 and sum(outcomes.values()) == 3359
    assert prepare.final_outcomes(EXPORT_2014) == {}  # nothing final yet


def test_spans_prepared_before_outcomes_had_to_be_final_are_refused(tmp_path):
    prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=500)
    report = prepare.span_dir(tmp_path, SPAN_2015) / prepare.REPORT_FILE_NAME
    values = json.loads(report.read_text())
    del values["outcome_final_through"]  # as such a report was written
    report.write_text(json.dumps(values))
    with pytest.raises(prepare.PreparationError, match="prepared before outcomes had to be final"):
        prepare.prepare_all(prepare.RAW_DIR, tmp_path, max_rows=500)
