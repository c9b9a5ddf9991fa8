"""Outcomes that come back, joined with the logged requests into a new export.

    python -m feedback.join --outcomes outcomes.csv

Complaints are asked about when they arrive; whether the consumer disputes
the company's response is learned weeks later. This command joins those
outcomes with the requests serving logged (feedback/logging_proxy.py) and
writes the joined complaints as an export in the canonical columns into the
raw data folder, where the pipeline prepares and ingests it like any export
(a span named by its newest day; data/prepare.py).

The outcomes file is a CSV with the header `complaint_id,disputed,date_learned`:
the complaint id the client sent, `Yes` or `No`, and the day the outcome was
learned (YYYY-MM-DD).

The join, and what it counts (printed, and kept next to the export as
`<export>.join.json`):
- joined: complaints with a logged request and one valid outcome. Their
  features are the ones the model was asked with (no re-reading of another
  database: what the model saw is what it learns from), dates included
  (the complaint's own `date_received` names the feedback span, as in any
  export; a request logged before the model took dates has none, and
  prepare rejects its row).
- repeated requests: the same complaint asked again; the first request is
  the one joined (what the model first answered).
- duplicate outcomes: rows repeating a complaint's outcome (the earliest
  date learned is kept).
- conflicting outcomes: complaints given both `Yes` and `No`; left out, since
  which one is true cannot be told here.
- outcome before prediction: learned on a day before the complaint was asked
  about: impossible in a working loop (a mixed-up id or clock), so refused.
- unmatched outcomes: no logged request has the id (not sampled, logged
  before the window, or an id serving never saw).
- invalid outcomes: `disputed` not Yes/No, or an unreadable date.
- awaiting outcome: logged complaints with no outcome yet; a later join takes
  them when their outcome is in.
- already joined: complaints an earlier feedback export in the raw folder
  holds (each complaint is joined once; its span keeps it).
- requests without an id: logged, but they cannot be joined (sent through
  serving_raw or without `complaint_id`).

The window: every logged request up to today, or `--since/--until`; what an
earlier feedback export holds is skipped, so outcomes that arrive late are
joined by the next run. Fewer joined complaints than a span needs
(data/prepare.py MIN_SPAN_ROWS) are refused: collect more outcomes first.
An export ends on the day of its newest joined request and must end after
every earlier feedback export: otherwise its span would not be newer than
the spans the pipeline reads (prepare refuses a second span on one day, and
a default run never ingests an older one). Late outcomes for requests of
days already exported therefore wait to be joined with newer traffic.
Exit status 0 written, 1 refused, 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import io
import json
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from data import prepare, storage
from data.storage import Location
from feedback import prediction_log
from models import features

OUTCOME_COLUMNS = ("complaint_id", "disputed", "date_learned")
_OUTCOME_VALUES = {prepare.DISPUTED: 1, prepare.NOT_DISPUTED: 0}
EXPORT_PATTERN = re.compile(r"^feedback-(\d{8})-(\d{8})\.csv$")
EXPORT_COLUMNS = (*prepare.CANONICAL_COLUMNS, prepare.ID_COLUMN)


class FeedbackError(ValueError):
    """Input the join cannot use; the message says what to do."""


@dataclasses.dataclass
class Outcome:
    complaint_id: str
    disputed: int
    learned: datetime.date


@dataclasses.dataclass
class Asked:
    """One logged complaint: what the model was asked, and on which day."""

    complaint_id: str
    values: dict
    day: datetime.date


@dataclasses.dataclass
class JoinCounts:
    logged_complaints: int = 0
    requests_without_id: int = 0
    repeated_requests: int = 0
    already_joined: int = 0
    outcome_rows: int = 0
    invalid_outcomes: int = 0
    duplicate_outcomes: int = 0
    conflicting_outcomes: int = 0
    unmatched_outcomes: int = 0
    outcome_before_prediction: int = 0
    awaiting_outcome: int = 0
    joined: int = 0
    disputed: int = 0

    def render(self) -> str:
        return "\n".join(
            f"  {name.replace('_', ' '):<26} {value:>7,}"
            for name, value in dataclasses.asdict(self).items()
        )


def read_outcomes(text: str, source: str, counts: JoinCounts) -> dict[str, Outcome | None]:
    """{complaint id: its outcome, or None when its rows conflict}."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if tuple(reader.fieldnames or ()) != OUTCOME_COLUMNS:
        raise FeedbackError(
            f"{source}: the header must be {','.join(OUTCOME_COLUMNS)}, "
            f"got {','.join(reader.fieldnames or ['(empty file)'])}"
        )
    rows: dict[str, list[Outcome]] = {}
    for row in reader:
        counts.outcome_rows += 1
        complaint_id = (row["complaint_id"] or "").strip()
        try:
            disputed = _OUTCOME_VALUES[(row["disputed"] or "").strip()]
            learned = datetime.date.fromisoformat((row["date_learned"] or "").strip())
        except (KeyError, ValueError):
            counts.invalid_outcomes += 1
            continue
        if not complaint_id:
            counts.invalid_outcomes += 1
            continue
        rows.setdefault(complaint_id, []).append(Outcome(complaint_id, disputed, learned))
    outcomes: dict[str, Outcome | None] = {}
    for complaint_id, given in rows.items():
        if len({o.disputed for o in given}) > 1:
            counts.conflicting_outcomes += 1
            outcomes[complaint_id] = None
            continue
        counts.duplicate_outcomes += len(given) - 1
        outcomes[complaint_id] = min(given, key=lambda o: o.learned)  # first learned
    return outcomes


def first_requests(logged: Iterable[tuple[dict, datetime.date]], counts: JoinCounts) -> dict:
    """{complaint id: Asked} from (complaint as logged, day) pairs, oldest first."""
    asked: dict[str, Asked] = {}
    for values, day in sorted(logged, key=lambda pair: pair[1]):
        counts.logged_complaints += 1
        complaint_id = str(values.get(prepare.ID_COLUMN, "")).strip()
        if not complaint_id:
            counts.requests_without_id += 1
        elif complaint_id in asked:
            counts.repeated_requests += 1
        else:
            asked[complaint_id] = Asked(complaint_id, values, day)
    return asked


def join(
    asked: dict[str, Asked],
    outcomes: dict[str, Outcome | None],
    counts: JoinCounts,
    joined_before: Collection[str] = (),
):
    """Canonical rows (with complaint_id) of the complaints joined with an
    outcome, except those `joined_before`."""
    rows = []
    for complaint_id, outcome in outcomes.items():
        if outcome is None:
            continue
        request = asked.get(complaint_id)
        if request is None:
            counts.unmatched_outcomes += 1
            continue
        if complaint_id in joined_before:
            counts.already_joined += 1
            continue
        if outcome.learned < request.day:
            counts.outcome_before_prediction += 1
            continue
        row = {column: "" for column in EXPORT_COLUMNS}
        for name in features.RAW_INPUT_NAMES:
            if name in request.values:
                row[name] = str(request.values[name])
        # The client sends the ZIP as a number (leading zeros lost); the
        # canonical column is five digits.
        row["zip_code"] = prepare.normalize_zip(row["zip_code"]) or ""
        row[prepare.LABEL_COLUMN] = prepare.outcome_text(outcome.disputed)
        row[prepare.ID_COLUMN] = complaint_id
        rows.append(row)
        counts.disputed += outcome.disputed
    answered = set(outcomes) | set(joined_before)
    counts.awaiting_outcome = sum(1 for c in asked if c not in answered)
    counts.joined = len(rows)
    return sorted(rows, key=lambda r: (r[prepare.DATE_COLUMN], r[prepare.ID_COLUMN]))


def earlier_exports(raw_dir: Location) -> list[tuple[datetime.date, datetime.date, Location]]:
    found = []
    children: list[Location] = list(raw_dir.iterdir()) if raw_dir.is_dir() else []
    for path in sorted(children, key=lambda child: child.name):
        match = EXPORT_PATTERN.match(path.name)
        if match:
            first, last = (datetime.datetime.strptime(d, "%Y%m%d").date() for d in match.groups())
            found.append((first, last, path))
    return found


def joined_ids(exports: Sequence[Location]) -> set[str]:
    ids: set[str] = set()
    for path in exports:
        with storage.open_text(path) as f:
            ids.update(row[prepare.ID_COLUMN] for row in csv.DictReader(f))
    return ids


def export_csv(rows: Sequence[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def run(
    prefix: str,
    outcomes_path: Path,
    raw_dir: Location,
    since: datetime.date | None = None,
    until: datetime.date | None = None,
) -> tuple[Location | None, JoinCounts, str]:
    """Joins and writes; returns (export written or None, counts, message)."""

    counts = JoinCounts()
    try:
        text = outcomes_path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise FeedbackError(f"cannot read {outcomes_path}: {error.strerror}") from error
    outcomes = read_outcomes(text, str(outcomes_path), counts)
    earlier = earlier_exports(raw_dir)
    until = until or datetime.datetime.now(datetime.timezone.utc).date()
    try:
        logged = [
            (values, prediction_log.logged_day(record))
            for record in prediction_log.read_logs(prefix, since, until)
            for values in prediction_log.logged_complaints(record)
        ]
    except prediction_log.CorruptLog as error:
        raise FeedbackError(str(error)) from None
    window = f"{since or 'the first log'} .. {until}"
    if not logged:
        return None, counts, f"no logged requests under {prefix}-*.tfrecord for {window}"
    rows = join(
        first_requests(logged, counts), outcomes, counts, joined_ids([p for *_, p in earlier])
    )
    if len(rows) < prepare.MIN_SPAN_ROWS:
        return (
            None,
            counts,
            f"only {len(rows)} complaint(s) joined for {window}: a span needs at least "
            f"{prepare.MIN_SPAN_ROWS}; nothing written (join again when more outcomes are in)",
        )
    first, last = rows[0][prepare.DATE_COLUMN], rows[-1][prepare.DATE_COLUMN]
    newest = max(earlier, key=lambda e: e[1], default=None)
    if newest is not None and newest[1].isoformat() >= last:
        # Its span would be the same as, or older than, one the pipeline already
        # reads: prepare refuses the first, and a default run never ingests the second.
        return (
            None,
            counts,
            f"{len(rows)} complaints joined, all asked on or before {last}; "
            f"{newest[2].name} already ends on {newest[1]}: nothing written, join again "
            "once newer traffic has outcomes (the late ones are joined with it)",
        )
    name = f"feedback-{first.replace('-', '')}-{last.replace('-', '')}.csv"
    raw_dir.mkdir(parents=True, exist_ok=True)
    export = raw_dir / name
    export.write_text(export_csv(rows))
    summary = {
        "window": [str(since) if since else None, str(until)],
        "logs": prefix,
        "outcomes": str(outcomes_path),
        **dataclasses.asdict(counts),
    }
    (raw_dir / f"{name}.join.json").write_text(json.dumps(summary, indent=2) + "\n")
    return export, counts, f"wrote {export}: {len(rows):,} labelled complaints, {window}"


def main(argv: Sequence[str] | None = None) -> int:
    from settings import configs

    parser = argparse.ArgumentParser(
        prog="python -m feedback.join",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--outcomes", type=Path, required=True, help="outcomes CSV")
    parser.add_argument(
        "--since", type=prediction_log.parse_day, help="first day of logs to join (UTC)"
    )
    parser.add_argument(
        "--until", type=prediction_log.parse_day, help="last day of logs to join (default: today)"
    )
    config, args = configs.parse_args(parser, argv)
    try:
        export, counts, message = run(
            config.prediction_log_prefix,
            args.outcomes,
            storage.location(config.raw_data_dir),
            args.since,
            args.until,
        )
    except FeedbackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("join of logged requests and outcomes:")
    print(counts.render())
    print(message, file=sys.stdout if export else sys.stderr)
    if export:
        print("the next pipeline run prepares it as a span: python runners/beam_runner.py")
    return 0 if export else 1


if __name__ == "__main__":
    sys.exit(main())
