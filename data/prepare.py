"""Turns CFPB complaint exports of any vintage into one canonical CSV per span.

CFPB exports differ between years: column names change ("Company response" vs
"Company response to consumer"), columns come and go (`Company`, `Submitted
via`), some exports carry a leading unnamed index column, dates are `M/D/YYYY`
or ISO, and ZIP codes lose leading zeros or are masked (`770XX`). This module
maps all of that onto CANONICAL_COLUMNS and lays the result out as

    <spans_dir>/span-<N>/complaints.csv     (what CsvExampleGen reads)
    <spans_dir>/span-<N>/report.json        (what was kept, fixed and rejected)

Exports in the raw folder become spans in file-name order (CFPB names carry
their date range, so the newest export is the latest span). Rows that cannot be
parsed are counted per reason and reported; none disappear silently.

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
import re
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

RAW_DIR = Path(__file__).resolve().parent / "raw"
# An export losing more rows than this to rejection is broken, not quirky (the
# real exports lose 1 of 8,340 and none of 28,156): refuse it instead of
# training on the remainder.
MAX_REJECTED_FRACTION = 0.05
INVALID_ZIP = "zip_code invalid, written empty"
SPAN_FILE_NAME = "complaints.csv"
REPORT_FILE_NAME = "report.json"
LABEL_COLUMN = "consumer_disputed"

CANONICAL_COLUMNS = (
    "product",
    "sub_product",
    "issue",
    "sub_issue",
    "company",
    "state",
    "zip_code",
    "company_response",
    "timely_response",
    "submitted_via",
    "date_received",
    LABEL_COLUMN,
)

# Every canonical column but two: the 2015 export has no company and no
# submission channel (neither is a model feature). An export without one of
# these is refused rather than written with an empty column.
REQUIRED_COLUMNS = tuple(c for c in CANONICAL_COLUMNS if c not in ("company", "submitted_via"))

# Header spellings seen across CFPB vintages, after `_normalize_header`.
_HEADER_ALIASES = {
    "company_response_to_consumer": "company_response",
    "zip": "zip_code",
    "zipcode": "zip_code",
}
_DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%m/%d/%y")
_LABEL_VALUES = {"yes": 1, "no": 0, "": 0}
# Five characters of digits, or digits then `X` masking (CFPB masks ZIPs of
# small populations, e.g. `770XX`).
_ZIP_PATTERN = re.compile(r"^(\d{1,5})(X{0,2})$")


class PreparationError(ValueError):
    """An export cannot be turned into a span at all (no header, no label...)."""


@dataclasses.dataclass
class SpanReport:
    """What preparing one export did; written next to the span as JSON."""

    span: int
    source: str
    source_sha256: str
    rows_read: int = 0
    rows_written: int = 0
    max_rows: Optional[int] = None
    rejected: Dict[str, int] = dataclasses.field(default_factory=dict)
    fixed: Dict[str, int] = dataclasses.field(default_factory=dict)
    missing_columns: List[str] = dataclasses.field(default_factory=list)
    ignored_columns: List[str] = dataclasses.field(default_factory=list)
    positive_rows: int = 0

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def count(self, bucket: Dict[str, int], reason: str) -> None:
        bucket[reason] = bucket.get(reason, 0) + 1

    def summary(self) -> str:
        share = self.positive_rows / self.rows_written if self.rows_written else 0.0
        lines = [
            f"span {self.span} <- {self.source}: {self.rows_written} rows written "
            f"({share:.1%} disputed), {self.rows_read} read, "
            f"{self.rows_rejected} rejected"
        ]
        for reason, n in sorted(self.rejected.items()):
            lines.append(f"  rejected {n:>6}  {reason}")
        for reason, n in sorted(self.fixed.items()):
            lines.append(f"  fixed    {n:>6}  {reason}")
        if self.missing_columns:
            lines.append(f"  columns absent in this export, written empty: "
                         f"{', '.join(self.missing_columns)}")
        if self.ignored_columns:
            lines.append(f"  columns ignored: {', '.join(self.ignored_columns)}")
        return "\n".join(lines)


def _normalize_header(name: str) -> str:
    snake = re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")
    return _HEADER_ALIASES.get(snake, snake)


def _parse_date(value: str) -> Optional[str]:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.datetime.strptime(value, fmt).date().isoformat()
        except ValueError:
            continue
    return None


def _normalize_zip(value: str) -> Optional[str]:
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


def _decode(raw: bytes, path: Path) -> str:
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    # utf-8-sig: some exports start with a byte-order mark.
    return raw.decode("utf-8-sig")


def canonical_rows(text: str, report: SpanReport) -> Iterator[Dict[str, str]]:
    """Yields canonical rows from one export's CSV text, counting into `report`."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise PreparationError(f"{report.source}: file is empty (no header row)")
    columns = [_normalize_header(h) for h in header]
    index_of = {c: i for i, c in enumerate(columns) if c in CANONICAL_COLUMNS}
    report.missing_columns = [c for c in CANONICAL_COLUMNS if c not in index_of]
    report.ignored_columns = [h or "(unnamed index)" for h, c in zip(header, columns)
                              if c not in CANONICAL_COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in index_of]
    if missing:
        raise PreparationError(
            f"{report.source}: required column(s) missing: no column maps to "
            f"{', '.join(repr(c) for c in missing)} (header: {', '.join(header)})")

    for fields in reader:
        if not fields:
            continue  # trailing blank line, not a record
        report.rows_read += 1
        if len(fields) != len(header):
            report.count(report.rejected,
                         f"wrong field count (expected {len(header)})")
            continue
        row = {c: fields[i].strip() for c, i in index_of.items()}
        label = row[LABEL_COLUMN].lower()
        if label not in _LABEL_VALUES:
            report.count(report.rejected,
                         f"{LABEL_COLUMN} not Yes/No/empty (e.g. {row[LABEL_COLUMN]!r})")
            continue
        date = _parse_date(row["date_received"])
        if date is None:
            report.count(report.rejected, "date_received unparseable")
            continue
        if not row["product"]:
            report.count(report.rejected, "product empty")
            continue
        row["date_received"] = date
        row[LABEL_COLUMN] = str(_LABEL_VALUES[label])
        if "zip_code" in row:
            zip_code = _normalize_zip(row["zip_code"])
            if zip_code is None:
                report.count(report.fixed, INVALID_ZIP)
                zip_code = ""
            elif zip_code != row["zip_code"] and zip_code:
                report.count(report.fixed, "zip_code padded or unmasked")
            row["zip_code"] = zip_code
        yield {c: row.get(c, "") for c in CANONICAL_COLUMNS}


def _evenly_spaced(rows: List[Dict[str, str]], max_rows: Optional[int]):
    """A deterministic sample spread over the whole export (exports are sorted
    by date, so the first N rows would be one week of complaints)."""
    if max_rows is None or len(rows) <= max_rows:
        return rows
    return [rows[i * len(rows) // max_rows] for i in range(max_rows)]


def prepare_export(source: Path, span_dir: Path, span: int,
                   max_rows: Optional[int] = None,
                   max_rejected_fraction: float = MAX_REJECTED_FRACTION) -> SpanReport:
    """Writes one export as a canonical span; skips work that is already done.

    An unchanged span is left untouched on disk: ExampleGen fingerprints input
    files, so rewriting them would defeat the pipeline's cache.
    """
    raw = source.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    report_path = span_dir / REPORT_FILE_NAME
    if report_path.exists() and (span_dir / SPAN_FILE_NAME).exists():
        previous = json.loads(report_path.read_text())
        if (previous.get("source_sha256") == digest
                and previous.get("max_rows") == max_rows
                and previous.get("span") == span):
            return SpanReport(**previous)

    report = SpanReport(span=span, source=source.name, source_sha256=digest,
                        max_rows=max_rows)
    rows = _evenly_spaced(list(canonical_rows(_decode(raw, source), report)), max_rows)
    if not rows:
        raise PreparationError(
            f"{source.name}: no usable rows ({report.rows_read} read, all "
            f"rejected: {report.rejected})")
    rejected = sum(report.rejected.values())
    if rejected > max_rejected_fraction * report.rows_read:
        raise PreparationError(
            f"{source.name}: {rejected:,} of {report.rows_read:,} rows rejected, more than "
            f"{max_rejected_fraction:.0%}: {report.rejected}")
    invalid_zips = report.fixed.get(INVALID_ZIP, 0)
    if invalid_zips > max_rejected_fraction * report.rows_read:
        raise PreparationError(
            f"{source.name}: zip_code: {invalid_zips:,} of {report.rows_read:,} values are not "
            f"ZIP codes (more than {max_rejected_fraction:.0%}; wrong column or type?)")
    report.rows_written = len(rows)
    report.positive_rows = sum(r[LABEL_COLUMN] == "1" for r in rows)

    span_dir.mkdir(parents=True, exist_ok=True)
    with open(span_dir / SPAN_FILE_NAME, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CANONICAL_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    report_path.write_text(json.dumps(dataclasses.asdict(report), indent=2) + "\n")
    return report


def raw_exports(raw_dir: Path) -> List[Path]:
    exports = sorted(p for p in raw_dir.iterdir()
                     if p.name.endswith((".csv", ".csv.gz")))
    if not exports:
        raise PreparationError(f"no .csv or .csv.gz exports in {raw_dir}")
    return exports


def span_dir(spans_dir: Path, span: int) -> Path:
    return spans_dir / f"span-{span}"


def prepare_all(raw_dir: Path, spans_dir: Path,
                max_rows: Optional[int] = None) -> List[SpanReport]:
    """Prepares every export in `raw_dir`; span N is the N-th export by name."""
    return [prepare_export(source, span_dir(spans_dir, span), span, max_rows)
            for span, source in enumerate(raw_exports(raw_dir), start=1)]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.prepare",
        description="Map CFPB complaint exports onto the canonical schema, one span each.")
    parser.add_argument("--raw-dir", type=Path, default=RAW_DIR,
                        help="folder of CFPB exports (.csv or .csv.gz); default: %(default)s")
    parser.add_argument("--spans-dir", type=Path, required=True,
                        help="where span-<N>/complaints.csv are written")
    parser.add_argument("--max-rows", type=int, default=None,
                        help="keep at most this many rows per span, evenly spaced")
    args = parser.parse_args(argv)
    try:
        reports = prepare_all(args.raw_dir, args.spans_dir, args.max_rows)
    except PreparationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for report in reports:
        print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
