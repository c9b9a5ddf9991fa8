"""Turns CFPB complaint exports of any vintage into one canonical CSV per span.

CFPB exports differ between years: column names change ("Company response" vs
"Company response to consumer"), columns come and go (`Company`, `Submitted
via`), some exports carry a leading unnamed index column, dates are `M/D/YYYY`
or ISO, ZIP codes lose leading zeros or are masked (`770XX`), and a file saved
by a spreadsheet may be Windows-1252 instead of UTF-8. This module maps all of
that onto CANONICAL_COLUMNS and lays the result out as

    <spans_dir>/span-<YYYYMMDD>/complaints.csv       (final outcomes: what CsvExampleGen reads)
    <spans_dir>/span-<YYYYMMDD>/open/complaints.csv  (outcome not final yet: to be scored)
    <spans_dir>/span-<YYYYMMDD>/report.json          (what was kept, fixed, excluded)
    <spans_dir>/span-<YYYYMMDD>/complaint_ids.txt    (ids of the final rows written)

A span is named by its data, not by file order: YYYYMMDD is the day of the
newest complaint in the export, so a newer export is a later span, and adding
an older one (a backfill) creates an earlier span and changes no existing one.
A prepared span is never rewritten (ExampleGen fingerprints its files, so the
pipeline's cache holds, and ML Metadata's examples of it stay true to them):
preparing its export with another row cap is refused.
A complaint is trained on from the first span where its outcome is final: one
already final in a prepared span is left out of a new span and counted (on a
fresh folder spans are prepared oldest first), while one still open there is
trained on from the later export that holds its final outcome. An export
without enough final outcomes to train on (a recent one) is prepared for
scoring only: its open complaints, no complaints.csv. Rows that cannot be used are counted per reason and
reported; none disappear silently.

    python -m data.prepare --help
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import gzip
import hashlib
import io
import json
import posixpath
import re
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from data import storage
from data.listing import shortened
from data.storage import Location
from models import features
from settings import configs

RAW_DIR = configs.BUNDLED_EXPORTS
# An export losing more rows than this to rejection is broken, not quirky (the
# real exports lose 1 of 8,340 and none of 28,156): refuse it instead of
# training on the remainder.
MAX_REJECTED_FRACTION = 0.05
# Fewer usable rows than this is not a span: its eval split (10%) would hold
# a handful of complaints. Merge it into the next export instead.
MIN_SPAN_ROWS = 100
INVALID_ZIP = "zip_code invalid, written empty"
SPAN_FILE_NAME = "complaints.csv"
# A span's open complaints sit in a folder of their own: ExampleGen's input
# pattern (span-{SPAN}/*.csv) reads every CSV file beside complaints.csv.
OPEN_DIR_NAME = "open"
REPORT_FILE_NAME = "report.json"
IDS_FILE_NAME = "complaint_ids.txt"
SPAN_DIR_PATTERN = re.compile(r"^span-(\d+)$")
LABEL_COLUMN = features.LABEL_KEY
ID_COLUMN = "complaint_id"

# The 2015 export has no company and no submission channel (neither is a
# model feature): the only columns an export may lack.
OPTIONAL_COLUMNS = ("company", "submitted_via")
# The day a complaint arrived: what orders complaints, names spans and decides
# whether an outcome is final.
DATE_COLUMN = features.DATE_RECEIVED.name
# The canonical CSV: the feature spec's raw inputs, the columns kept beside
# them, the label. (ExampleGen splits by a hash of each example's sorted
# features, so the column order decides nothing.)
CANONICAL_COLUMNS = (*features.RAW_INPUT_NAMES, *OPTIONAL_COLUMNS, LABEL_COLUMN)

# A span's complaints whose outcome is not observed yet: what batch scoring
# reads, by id, without a label.
OPEN_COLUMNS = (ID_COLUMN, *(c for c in CANONICAL_COLUMNS if c != LABEL_COLUMN))

# Every canonical column but the optional ones. An export without one of
# these is refused rather than written with an empty column.
REQUIRED_COLUMNS = tuple(c for c in CANONICAL_COLUMNS if c not in OPTIONAL_COLUMNS)

# The label rule, stated once (data/README.md: "Labels" and "The prediction
# moment"). `Yes` is a dispute and `No` is none. An empty label is "not
# disputed so far": CFPB writes `No` only once the consumer's 60 days to
# dispute the company's response are over (the 2014 export has no `No` at
# all). So a row's outcome is observed only when it is final:
# - while the company's response is still open (`In progress`) there is no
#   outcome yet; labelling it 0 taught the model "in progress => not
#   disputed" (2,690 rows of the 2015 export, none disputed);
# - a row received within OUTCOME_FINAL_AFTER_DAYS of its export's newest
#   complaint may still be disputed: the exports' dispute rate stops changing
#   for complaints received more than about a month before that day
#   (python -m bench.label_maturity). The rule is on age alone, whatever the
#   label (keeping recent `Yes` rows and dropping recent empty ones would
#   teach the model that recency means dispute); an explicit `No` is final.
# Rows without an observed outcome are not trained or evaluated on; those
# with a response are what batch scoring scores. `Untimely response` rows
# stay: there is no response to dispute, so 0 is their true outcome.
DISPUTED, NOT_DISPUTED = "Yes", "No"
LABEL_VALUES = {DISPUTED.lower(): 1, NOT_DISPUTED.lower(): 0, "": 0}
OPEN_RESPONSES = ("In progress",)
OUTCOME_FINAL_AFTER_DAYS = 35
UNKNOWN_OUTCOME = "outcome not known yet (company_response In progress)"
TOO_FEW_FINAL = f"final, but fewer than {MIN_SPAN_ROWS} in this export: a span for scoring only"
NOT_FINAL_OUTCOME = (
    f"outcome not final yet (received within {OUTCOME_FINAL_AFTER_DAYS} days of the "
    "export's newest complaint)"
)


def final_through(newest_received: str) -> str:
    """The newest day (ISO) a complaint may have been received for its outcome
    to be final in an export whose newest complaint is from `newest_received`."""
    newest = datetime.date.fromisoformat(newest_received)
    return (newest - datetime.timedelta(days=OUTCOME_FINAL_AFTER_DAYS)).isoformat()


def outcome_status(
    label: str, company_response: str, received: str, final_day: str | None
) -> str | None:
    """Why a row's outcome is not observed (UNKNOWN_OUTCOME, NOT_FINAL_OUTCOME),
    None when it is. `received` and `final_day` are ISO dates (final_through;
    None: the export states every outcome, see states_outcomes); `label` is
    Yes/No/empty in any case (KeyError otherwise)."""
    value = LABEL_VALUES[label.lower()]
    if company_response in OPEN_RESPONSES and label == "":
        return UNKNOWN_OUTCOME
    if final_day is not None and received > final_day and not (label and value == 0):
        return NOT_FINAL_OUTCOME
    return None


def states_outcomes(rows: Iterable[dict[str, str]]) -> bool:
    """True for an export whose every responded complaint is `Yes` or `No`:
    one that writes outcomes once they are known (feedback.join writes only
    learned outcomes), not one read while disputes are open, whose empty
    labels mean "not so far" (CFPB's exports). Its outcomes are final at any
    age."""
    return all(r[LABEL_COLUMN] or r["company_response"] in OPEN_RESPONSES for r in rows)


def outcome_text(disputed: int | bool) -> str:
    """An observed outcome as an export writes it (the rule's inverse)."""
    return DISPUTED if disputed else NOT_DISPUTED


# Header spellings seen across CFPB vintages, after `normalize_header`.
_HEADER_ALIASES = {
    "company_response_to_consumer": "company_response",
    "zip": "zip_code",
    "zipcode": "zip_code",
}
_DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%m/%d/%y")
# Five characters of digits, or digits then `X` masking (CFPB masks ZIPs of
# small populations, e.g. `770XX`).
_ZIP_PATTERN = re.compile(r"^(\d{1,5})(X{0,2})$")
_OTHER_DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}

_Row = TypeVar("_Row")


class PreparationError(ValueError):
    """An export cannot be turned into a span: the message names the file and
    what to do, and is meant to be printed as it is."""


@dataclasses.dataclass
class SpanReport:
    """What preparing one export did; written next to the span as JSON."""

    span: int
    source: str
    source_sha256: str
    encoding: str = "utf-8"
    first_date: str = ""
    last_date: str = ""
    rows_read: int = 0
    rows_written: int = 0
    open_rows_written: int = 0
    outcome_final_through: str = ""
    columns: list[str] = dataclasses.field(default_factory=list)
    max_rows: int | None = None
    rejected: dict[str, int] = dataclasses.field(default_factory=dict)
    excluded: dict[str, int] = dataclasses.field(default_factory=dict)
    fixed: dict[str, int] = dataclasses.field(default_factory=dict)
    missing_columns: list[str] = dataclasses.field(default_factory=list)
    ignored_columns: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    positive_rows: int = 0

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def count(self, bucket: dict[str, int], reason: str) -> None:
        bucket[reason] = bucket.get(reason, 0) + 1

    def summary(self) -> str:
        share = self.positive_rows / self.rows_written if self.rows_written else 0.0
        encoding = "" if self.encoding == "utf-8" else f", read as {self.encoding}"
        lines = [
            f"span {self.span} <- {self.source} ({self.first_date} .. {self.last_date}"
            f"{encoding}): {self.rows_written} rows written ({share:.1%} disputed), "
            f"{self.open_rows_written} open (to score), {self.rows_read} read, "
            f"{self.rows_rejected} rejected, {sum(self.excluded.values())} excluded"
        ]
        for kind, bucket in (
            ("rejected", self.rejected),
            ("excluded", self.excluded),
            ("fixed", self.fixed),
        ):
            for reason, n in sorted(bucket.items()):
                lines.append(f"  {kind:<8} {n:>6}  {reason}")
        if self.missing_columns:
            lines.append(
                f"  columns absent in this export, written empty: {', '.join(self.missing_columns)}"
            )
        if self.ignored_columns:
            lines.append(f"  columns ignored: {', '.join(self.ignored_columns)}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def normalize_header(name: str) -> str:
    snake = re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")
    return _HEADER_ALIASES.get(snake, snake)


def parse_date(value: str) -> str | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.datetime.strptime(value, fmt).date().isoformat()
        except ValueError:
            continue
    return None


def normalize_zip(value: str) -> str | None:
    """Returns a five-digit ZIP (masked digits as 0), '' if empty, None if invalid.

    Exports that went through a spreadsheet lost leading zeros (`2134` for
    `02134`), so short all-digit values are left-padded. Masked digits become 0,
    as in the book's pipeline, so the column stays numeric for ExampleGen.
    """
    value = value.strip().upper()
    if not value:
        return ""
    value = value.split("-", 1)[0]  # ZIP+4
    match = _ZIP_PATTERN.match(value)
    if not match:
        return None
    digits, mask = match.groups()
    if mask:
        if len(digits) + len(mask) != 5:
            return None
        return digits + "0" * len(mask)
    return digits.zfill(5)


def decode(raw: bytes, path: Location) -> tuple[str, str]:
    """The export's text and the encoding it was read with.

    CFPB publishes UTF-8. A file saved by a spreadsheet on Windows is
    Windows-1252 (a superset of Latin-1's printable characters): bytes that are
    not valid UTF-8 are read as that. UTF-16 (NUL bytes, a UTF-16 byte-order
    mark) and bytes that Windows-1252 leaves undefined are refused.
    """
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise PreparationError(
                f"{path}: not a readable gzip file ({e}); download the export again, or "
                "save it uncompressed as .csv"
            ) from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:65536]:
        raise PreparationError(
            f"{path}: looks like UTF-16 or a binary file (NUL bytes), not a CSV export; "
            "save it as CSV in UTF-8"
        )
    try:
        return raw.decode("utf-8-sig"), "utf-8"  # -sig: some exports start with a BOM
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as e:
        raise PreparationError(
            f"{path}: neither UTF-8 nor Windows-1252/Latin-1 (byte 0x{raw[e.start]:02x} at "
            f"offset {e.start} is undefined in both); save the file as CSV in UTF-8"
        ) from None


def _delimiter_hint(header: Sequence[str]) -> str:
    if len(header) == 1:
        for delimiter, name in _OTHER_DELIMITERS.items():
            if delimiter in header[0]:
                return (
                    f"; the header is separated by {name}, but CFPB exports are "
                    "comma-separated: export or save the file as CSV with commas"
                )
    return ""


def canonical_rows(text: str, report: SpanReport) -> Iterator[dict[str, str]]:
    """Yields canonical rows (plus `complaint_id` when the export has one) from
    one export's CSV text, counting rejections and fixes into `report`. The
    label is still the export's Yes/No/empty: whether it is an observed
    outcome depends on the export's newest complaint (split_by_outcome)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise PreparationError(f"{report.source}: file is empty (no header row)")
    columns = [normalize_header(h) for h in header]
    wanted = CANONICAL_COLUMNS + (ID_COLUMN,)
    index_of = {c: i for i, c in enumerate(columns) if c in wanted}
    report.missing_columns = [c for c in CANONICAL_COLUMNS if c not in index_of]
    report.ignored_columns = [
        h or "(unnamed index)" for h, c in zip(header, columns, strict=True) if c not in wanted
    ]
    missing = [c for c in REQUIRED_COLUMNS if c not in index_of]
    if missing:
        raise PreparationError(
            f"{report.source}: required column(s) missing: no column maps to "
            f"{', '.join(repr(c) for c in missing)} (header: "
            f"{shortened(header, 20)}){_delimiter_hint(header)}"
        )

    for fields in reader:
        if not fields:
            continue  # trailing blank line, not a record
        report.rows_read += 1
        if len(fields) != len(header):
            report.count(report.rejected, f"wrong field count (expected {len(header)})")
            continue
        row = {c: fields[i].strip() for c, i in index_of.items()}
        label = row[LABEL_COLUMN].lower()
        if label not in LABEL_VALUES:
            report.count(
                report.rejected, f"{LABEL_COLUMN} not Yes/No/empty (e.g. {row[LABEL_COLUMN]!r})"
            )
            continue
        parsed = {name: parse_date(row[name]) for name in features.DATE_INPUT_NAMES}
        dates = {name: date for name, date in parsed.items() if date is not None}
        unparseable = [name for name in parsed if name not in dates]
        if unparseable:
            report.count(report.rejected, f"{unparseable[0]} unparseable")
            continue
        if not row["product"]:
            report.count(report.rejected, "product empty")
            continue
        row.update(dates)
        date = row[DATE_COLUMN]
        report.first_date = min(report.first_date or date, date)
        report.last_date = max(report.last_date, date)
        if "zip_code" in row:
            zip_code = normalize_zip(row["zip_code"])
            if zip_code is None:
                report.count(report.fixed, INVALID_ZIP)
                zip_code = ""
            elif zip_code != row["zip_code"] and zip_code:
                report.count(report.fixed, "zip_code padded or unmasked")
            row["zip_code"] = zip_code
        canonical = {c: row.get(c, "") for c in CANONICAL_COLUMNS}
        if ID_COLUMN in row:
            canonical[ID_COLUMN] = row[ID_COLUMN]
        yield canonical


def complaints_as_asked(source: Path) -> Iterator[dict[str, str]]:
    """Every row of an export as a served model is asked about it: canonical
    names, the ZIP normalized as above ('' when invalid), the complaint id, and
    no label rule (open complaints included: they are asked about too)."""
    text, _ = decode(_read_bytes(source), source)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [normalize_header(h) for h in next(reader, [])]
    for fields in reader:
        if len(fields) != len(header):
            continue
        row = {c: v.strip() for c, v in zip(header, fields, strict=True)}
        if "zip_code" in row:
            row["zip_code"] = normalize_zip(row["zip_code"]) or ""
        for name in features.DATE_INPUT_NAMES:
            if name in row:  # an unreadable date is sent as it is: serving refuses it
                row[name] = parse_date(row[name]) or row[name]
        yield {c: row[c] for c in (*CANONICAL_COLUMNS, ID_COLUMN) if c in row}


def final_outcomes(source: Path) -> dict[str, int]:
    """Complaint id -> observed outcome (1 disputed, 0 not) of every complaint
    of an export whose outcome is final by the label rule above."""
    text, encoding = decode(_read_bytes(source), source)
    report = SpanReport(span=0, source=source.name, source_sha256="", encoding=encoding)
    rows = list(canonical_rows(text, report))
    if not report.last_date:
        return {}
    final, _ = split_by_outcome(rows, report)
    return {r[ID_COLUMN]: int(r[LABEL_COLUMN]) for r in final if r.get(ID_COLUMN)}


def _evenly_spaced(rows: list[_Row], max_rows: int | None) -> list[_Row]:
    """A deterministic sample spread over the whole export (exports are sorted
    by date, so the first N rows would be one week of complaints)."""
    if max_rows is None or len(rows) <= max_rows:
        return rows
    return [rows[i * len(rows) // max_rows] for i in range(max_rows)]


def span_number(last_date: str) -> int:
    """The span of an export whose newest complaint is from `last_date` (ISO)."""
    return int(last_date.replace("-", ""))


@dataclasses.dataclass
class _ParsedExport:
    """One raw export read and mapped, not yet written: its rows and report."""

    source: Location
    report: SpanReport
    rows: list[dict[str, str]]  # with an observed outcome
    open_rows: list[dict[str, str]]  # without one yet, no label

    @classmethod
    def read(cls, source: Location, raw: bytes, digest: str, max_rows: int | None) -> _ParsedExport:
        text, encoding = decode(raw, source)
        report = SpanReport(
            span=0, source=source.name, source_sha256=digest, encoding=encoding, max_rows=max_rows
        )
        rows = list(canonical_rows(text, report))
        if not report.last_date:
            raise PreparationError(
                f"{source}: no usable rows ({report.rows_read} read; rejected: "
                f"{report.rejected or 'none'}); is this a CFPB complaints export?"
            )
        report.span = span_number(report.last_date)
        final, open_ = split_by_outcome(rows, report)
        return cls(source, report, final, open_)


def split_by_outcome(
    rows: Iterable[dict[str, str]], report: SpanReport
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(rows with an observed outcome, labelled 0/1; open rows, without a
    label) of one export, by the label rule; counts the open ones by reason."""
    rows = list(rows)
    explicit = states_outcomes(rows)
    report.outcome_final_through = report.last_date if explicit else final_through(report.last_date)
    final_day = None if explicit else report.outcome_final_through
    final, open_ = [], []
    for row in rows:
        label = row.pop(LABEL_COLUMN)
        why = outcome_status(label, row["company_response"], row[DATE_COLUMN], final_day)
        if why is None:
            final.append({**row, LABEL_COLUMN: str(LABEL_VALUES[label.lower()])})
        else:
            report.count(report.excluded, why)
            open_.append(row)
    return final, open_


def _check_rejections(source: Location, report: SpanReport, max_rejected_fraction: float) -> None:
    rejected = report.rows_rejected
    if rejected > max_rejected_fraction * report.rows_read:
        raise PreparationError(
            f"{source}: {rejected:,} of {report.rows_read:,} rows rejected, more than "
            f"{max_rejected_fraction:.0%}: {report.rejected}; fix the export (a truncated "
            "download, or a different file format?) or remove it from the raw folder"
        )
    invalid_zips = report.fixed.get(INVALID_ZIP, 0)
    if invalid_zips > max_rejected_fraction * report.rows_read:
        raise PreparationError(
            f"{source}: zip_code: {invalid_zips:,} of {report.rows_read:,} values are not "
            f"ZIP codes (more than {max_rejected_fraction:.0%}; wrong column or type?)"
        )


def _new_complaints(
    rows: list[dict[str, str]], taken: dict[str, int], report: SpanReport
) -> list[tuple[str, dict[str, str]]]:
    """(complaint id, row) of `rows` without the complaints other spans hold
    final (`taken`: complaint id -> span) and without repeats, counted."""
    kept, seen = [], set()
    for row in rows:
        complaint = row.pop(ID_COLUMN, "")
        if complaint and complaint in taken:
            report.count(report.excluded, f"complaint already in span {taken[complaint]}")
            continue
        if complaint and complaint in seen:
            report.count(report.excluded, "complaint id repeated in this export")
            continue
        if complaint:
            seen.add(complaint)
        kept.append((complaint, row))
    return kept


def _write_span(
    export: _ParsedExport,
    directory: Location,
    others: dict[int, SpanReport],
    taken: dict[str, int],
    max_rejected_fraction: float,
) -> SpanReport:
    """Writes one parsed export as span `export.report.span`: its final rows
    (without the complaints other spans hold final) for training, its open
    ones for scoring. Too few final rows to train on, and open ones: a span
    for scoring only."""
    report, source = export.report, export.source
    _check_rejections(source, report, max_rejected_fraction)
    rows = _new_complaints(export.rows, taken, report)
    open_rows = _new_complaints(export.open_rows, taken, report)
    overlapping = [
        s
        for s, r in sorted(others.items())
        if r.first_date <= report.last_date and report.first_date <= r.last_date
    ]
    if overlapping and not any(c for c, _ in rows + open_rows):
        report.notes.append(
            f"dates overlap span(s) {', '.join(map(str, overlapping))}, and this export has "
            "no complaint ids: complaints in both are kept twice"
        )
    rows = _evenly_spaced(rows, report.max_rows)
    open_rows = _evenly_spaced(open_rows, report.max_rows)
    if len(rows) < MIN_SPAN_ROWS and not open_rows:
        raise PreparationError(
            f"{source}: too few rows for a span: {len(rows)} usable (at least {MIN_SPAN_ROWS} "
            f"needed; {report.rows_read} read, excluded: {report.excluded or 'none'}, "
            f"rejected: {report.rejected or 'none'}); merge it with the next export or "
            "remove it from the raw folder"
        )
    if len(rows) < MIN_SPAN_ROWS:
        if rows:
            report.excluded[TOO_FEW_FINAL] = len(rows)
        report.notes.append(
            f"for scoring only: {len(rows)} rows with a final outcome (at least "
            f"{MIN_SPAN_ROWS} to train on; outcomes are final for complaints received up to "
            f"{report.outcome_final_through}); a later export holding their final outcomes "
            "trains on them"
        )
        rows = []
    report.rows_written = len(rows)
    report.open_rows_written = len(open_rows)
    report.positive_rows = sum(r[LABEL_COLUMN] == "1" for _, r in rows)

    report.columns = list(CANONICAL_COLUMNS)
    directory.mkdir(parents=True, exist_ok=True)
    if rows:
        _write_csv(directory / SPAN_FILE_NAME, CANONICAL_COLUMNS, (r for _, r in rows))
    if open_rows:
        (directory / OPEN_DIR_NAME).mkdir(parents=True, exist_ok=True)
        _write_csv(
            open_file(directory),
            OPEN_COLUMNS,
            ({ID_COLUMN: c, **r} for c, r in open_rows),
        )
    ids = [c for c, _ in rows if c]
    if ids:
        (directory / IDS_FILE_NAME).write_text("\n".join(ids) + "\n")
    (directory / REPORT_FILE_NAME).write_text(
        json.dumps(dataclasses.asdict(report), indent=2) + "\n"
    )
    return report


def _write_csv(path: Location, columns: Sequence[str], rows: Iterable[dict[str, str]]) -> None:
    with storage.open_text(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def prepare_export(
    source: Location,
    directory: Location,
    max_rows: int | None = None,
    max_rejected_fraction: float = MAX_REJECTED_FRACTION,
) -> SpanReport:
    """Writes one export as a span in `directory`, with no other span to compare with."""
    raw = _read_bytes(source)
    export = _ParsedExport.read(source, raw, hashlib.sha256(raw).hexdigest(), max_rows)
    return _write_span(export, directory, {}, {}, max_rejected_fraction)


def _read_bytes(source: Location) -> bytes:
    try:
        return source.read_bytes()
    except OSError as e:
        raise PreparationError(f"{source}: cannot be read ({e.strerror})") from None


def raw_exports(raw_dir: Location) -> list[Location]:
    if not raw_dir.is_dir():
        raise PreparationError(f"raw data folder {raw_dir} does not exist (--raw-data-dir)")
    exports = sorted(p for p in raw_dir.iterdir() if p.name.endswith((".csv", ".csv.gz")))
    if not exports:
        raise PreparationError(f"no .csv or .csv.gz exports in {raw_dir}")
    return exports


def span_dir(spans_dir: Location, span: int) -> Location:
    return spans_dir / f"span-{span}"


def open_pattern(input_pattern: str) -> str:
    """The pattern of the open complaints' files beside the files that
    `input_pattern` (the spans' training files, e.g. span-{SPAN}/*.csv) reads."""
    folder, name = posixpath.split(input_pattern)
    return posixpath.join(folder, OPEN_DIR_NAME, name)


def open_file(directory: Location) -> Location:
    """The open complaints (OPEN_COLUMNS) of the span in `directory`."""
    return directory / OPEN_DIR_NAME / SPAN_FILE_NAME


def span_dirs(spans_dir: Location) -> dict[int, Location]:
    """The `span-<N>` folders in `spans_dir`, by span number."""
    folders: list[Location] = sorted(spans_dir.iterdir(), key=str) if spans_dir.is_dir() else []
    return {int(m.group(1)): d for d in folders if (m := SPAN_DIR_PATTERN.match(d.name))}


def read_span_report(directory: Location) -> SpanReport | None:
    """The preparation report of the span in `directory`, None if it has none
    (a span is complete once its report is written: it is written last).
    Raises PreparationError for a report that is not one."""
    report_path = directory / REPORT_FILE_NAME
    if not report_path.exists():
        return None
    fields = {f.name for f in dataclasses.fields(SpanReport)}
    try:
        values = json.loads(report_path.read_text())
        return SpanReport(**{k: v for k, v in values.items() if k in fields})
    except (ValueError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise PreparationError(
            f"{report_path}: not a readable span report ({error}); it was torn or edited: "
            f"delete {directory} to prepare its export again"
        ) from None


def prepared_spans(spans_dir: Location) -> dict[int, SpanReport]:
    """The spans already in `spans_dir`, by number, from their reports."""
    spans = {}
    for span, directory in span_dirs(spans_dir).items():
        if not (directory / REPORT_FILE_NAME).exists():
            continue
        if len(str(span)) != 8:
            raise PreparationError(
                f"{directory}: a span numbered by file order, from before spans were named "
                f"by their newest day (YYYYMMDD); delete {spans_dir} once to re-prepare"
            )
        report = read_span_report(directory)
        if report is not None and not report.outcome_final_through:
            raise PreparationError(
                f"{directory}: prepared before outcomes had to be final (recent closures "
                "were labelled 'not disputed'; data/README.md, 'The prediction moment'); "
                f"delete {spans_dir} once to re-prepare"
            )
        if report is not None and report.columns != list(CANONICAL_COLUMNS):
            raise PreparationError(
                f"{directory}: prepared with the columns "
                f"{', '.join(report.columns) or 'of a version before reports named them'}, "
                f"not today's canonical ones ({', '.join(CANONICAL_COLUMNS)}; "
                f"models/features.py); delete {spans_dir} once to re-prepare"
            )
        if report is not None:
            spans[span] = report
    return spans


def _taken_ids(spans_dir: Location, spans: Iterable[int]) -> dict[str, int]:
    taken: dict[str, int] = {}
    for span in spans:
        ids = span_dir(spans_dir, span) / IDS_FILE_NAME
        if ids.exists():
            taken.update((complaint, span) for complaint in ids.read_text().split())
    return taken


def prepare_all(
    raw_dir: Location,
    spans_dir: Location,
    max_rows: int | None = None,
    max_rejected_fraction: float = MAX_REJECTED_FRACTION,
) -> list[SpanReport]:
    """Prepares every export in `raw_dir` not prepared yet; returns the reports
    of the raw folder's spans, oldest first.

    Exports already prepared with the same settings are recognized by their
    SHA-256 and not even parsed. New exports are written oldest first, each
    without the complaints that another prepared span holds.
    """
    spans = prepared_spans(spans_dir)
    by_digest = {r.source_sha256: r for r in spans.values()}
    in_raw: set[int] = set()
    new: dict[int, _ParsedExport] = {}
    for source in raw_exports(raw_dir):
        raw = _read_bytes(source)
        digest = hashlib.sha256(raw).hexdigest()
        known = by_digest.get(digest)
        if known and known.max_rows != max_rows:
            # Rewriting it would change a span ML Metadata already holds
            # examples of: runs would train on those, not on the files.
            raise PreparationError(
                f"{source} is span {known.span}, prepared with --max-rows-per-span "
                f"{known.max_rows or 'unset'}; this run asks for {max_rows or 'unset'}. A "
                f"prepared span is never rewritten: keep the setting, or give this one "
                f"its own --data-root (and pipeline root and store), or delete {spans_dir} "
                "to prepare every span again"
            )
        if known:
            in_raw.add(known.span)
            continue
        export = _ParsedExport.read(source, raw, digest, max_rows)
        span = export.report.span
        owner = new[span].report if span in new else spans.get(span)
        if owner is not None and owner.source_sha256 != digest:
            raise PreparationError(
                f"{source}: its newest complaint is from {export.report.last_date}, so it "
                f"would be span {span}, which {owner.source} already is; two different "
                "exports cannot end on the same day: keep one of them in the raw folder (or "
                f"delete {span_dir(spans_dir, span)} if {source.name} replaces it)"
            )
        new[span] = export
    for span in sorted(new):
        others = {s: r for s, r in spans.items() if s != span}
        spans[span] = _write_span(
            new[span],
            span_dir(spans_dir, span),
            others,
            _taken_ids(spans_dir, others),
            max_rejected_fraction,
        )
        in_raw.add(span)
    return [spans[s] for s in sorted(in_raw)]


# The location settings preparation reads and writes.
PREPARE_LOCATIONS = ("raw_data_dir", "data_root")


def prepare_configured(
    config, check: Sequence[str] = PREPARE_LOCATIONS, to_train: bool = False
) -> list[SpanReport]:
    """prepare_all on the config's raw exports, data root and row cap, after
    one reachability check of each location setting in `check` (a run passes
    its output locations too, so that nothing starts when one is unusable).
    `to_train` (a pipeline run): also refuses a data root without a span to
    train on (or a --span for scoring only). Raises storage.StorageError
    naming the setting, PreparationError for a bad export."""
    storage.check_settings(config, check)
    spans_dir = storage.location(config.data_root)
    reports = prepare_all(
        storage.location(config.raw_data_dir), spans_dir, config.max_rows_per_span
    )
    if to_train and configs.picks_span(config.input_pattern):
        _check_trainable(spans_dir, config.span, reports)
    return reports


def _check_trainable(spans_dir: Location, span: int | None, reports: list[SpanReport]) -> None:
    """A run trains on a span's final outcomes: refuses one that has none."""
    trainable = [s for s, d in span_dirs(spans_dir).items() if (d / SPAN_FILE_NAME).exists()]
    newest = max(reports, key=lambda r: r.span, default=None)
    if span is not None and span not in trainable:
        raise PreparationError(
            f"span {span} has no final outcomes to train on ({span_dir(spans_dir, span)} has "
            f"no {SPAN_FILE_NAME}: a span for scoring only, or none); leave --span out to "
            "train on the newest span that has them"
        )
    if not trainable:
        final = f" (outcomes final up to {newest.outcome_final_through})" if newest else ""
        raise PreparationError(
            f"no span in {spans_dir} has final outcomes to train on: "
            f"{newest.source if newest else 'no export'} is for scoring only{final}; "
            "add an export that holds complaints received at least "
            f"{OUTCOME_FINAL_AFTER_DAYS} days before its newest one (data/README.md, "
            "'The prediction moment')"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.prepare",
        description="Map CFPB complaint exports onto the canonical schema, one span each "
        "(span-YYYYMMDD, the day of the export's newest complaint).",
    )
    config, _ = configs.parse_args(
        parser, argv, names=("raw_data_dir", "data_root", "max_rows_per_span")
    )
    try:
        reports = prepare_configured(config)
    except (PreparationError, storage.StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for report in reports:
        print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
