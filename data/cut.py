"""An earlier download of an export: its rows received up to a day, unchanged.

    python -m data.cut data/raw/complaints_2015-01_2015-03.csv.gz \\
        --through 2015-01-31 --output /tmp/loop/raw/complaints_2015-01.csv

CFPB's exports are date-range queries; a download taken on an earlier day holds
the complaints received until then. This writes such a download from a later
one (the header and the rows as they are, in their order), to try what the
pipeline does with exports that arrive one after another: the later export
then brings complaints the earlier one did not have, and outcomes that were
not final in it (data/README.md, "The prediction moment"). Its labels are the
later export's, so its recent outcomes are more final than a real download of
that day would have them; preparation still treats them as open by their age.
Exit status: 0 written, 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from data import prepare


def received_through(source: Path, day: str, output: Path) -> int:
    """Writes the rows of `source` received on or before `day` (ISO) to
    `output`; returns how many. Raises PreparationError for an unreadable export."""
    text, _ = prepare.decode(source.read_bytes(), source)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    columns = [prepare.normalize_header(h) for h in header]
    if prepare.DATE_COLUMN not in columns:
        raise prepare.PreparationError(f"{source}: no column maps to {prepare.DATE_COLUMN!r}")
    received = columns.index(prepare.DATE_COLUMN)
    rows = [
        r
        for r in reader
        if len(r) > received and (prepare.parse_date(r[received]) or "9999") <= day
    ]
    with output.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return len(rows)


def _day(value: str) -> str:
    try:
        return datetime.date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {value!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.cut",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("export", type=Path, help="a CFPB export (.csv or .csv.gz)")
    parser.add_argument("--through", type=_day, required=True, help="last day received (ISO)")
    parser.add_argument("--output", type=Path, required=True, help="the .csv to write")
    args = parser.parse_args(argv)
    try:
        written = received_through(args.export, args.through, args.output)
    except (OSError, prepare.PreparationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {written:,} complaints received through {args.through} to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
