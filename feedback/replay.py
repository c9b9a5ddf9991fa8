"""Sends the complaints of a CFPB export to TF Serving as traffic, for trying
the feedback loop without production traffic.

    python -m feedback.replay data/raw/complaints_2014-10_2014-11.csv.gz \\
        --port 8510 --rows 2000 --outcomes-out build/outcomes.csv

Each complaint goes as it would arrive (open complaints included; the label
is not sent) with its `complaint_id`, over gRPC Classify in batches, through
the client (serving/client.py). Point it at the logging proxy's port so the
requests are logged. With `--outcomes-out` it also writes the outcomes the
export (or a later one, `--outcomes-from`) records, as the outcomes file
`python -m feedback.join` reads (learned today; complaints whose outcome is
not final there are left out, by the label rule of data/prepare.py: in an
export read while their dispute window was open, recent complaints have none). Exit status: 0 sent, 1 the server failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import sys
from collections.abc import Sequence
from pathlib import Path

from data import prepare
from feedback import join
from serving import client
from settings import configs


def complaints(export: Path, rows: int | None) -> tuple[list[dict], list[dict], int]:
    """(complaints to send, their export rows, rows skipped as unsendable)."""
    sendable, sources, skipped = [], [], 0
    for row in prepare.complaints_as_asked(export):
        try:
            sendable.append(client.normalize({k: v for k, v in row.items() if v != ""}))
        except client.InputError:
            skipped += 1
            continue
        sources.append(row)
        if rows is not None and len(sendable) == rows:
            break
    return sendable, sources, skipped


def write_outcomes(path: Path, export: Path, rows: Sequence[dict], learned: datetime.date) -> int:
    """Writes the final outcomes `export` records for the complaints of `rows`
    (data/prepare.py's label rule decides which are final)."""
    outcomes = prepare.final_outcomes(export)
    written = 0
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(join.OUTCOME_COLUMNS)
        for row in rows:
            outcome = outcomes.get(row.get(prepare.ID_COLUMN, ""))
            if outcome is not None:
                writer.writerow(
                    [row[prepare.ID_COLUMN], prepare.outcome_text(outcome), learned.isoformat()]
                )
                written += 1
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m feedback.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("export", type=Path, help="a CFPB export (.csv or .csv.gz)")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=8510, help="gRPC port (the logging proxy's)")
    parser.add_argument("--rows", type=int, help="send at most this many complaints")
    parser.add_argument("--batch", type=int, default=50, help="complaints per request")
    parser.add_argument(
        "--outcomes-out", type=Path, help="write the sent complaints' outcomes here"
    )
    parser.add_argument(
        "--outcomes-from",
        type=Path,
        help="the export whose final outcomes --outcomes-out writes (default: the sent one; "
        "a later export, where more of them are final)",
    )
    config, args = configs.parse_args(parser, argv, names=("model_name",))
    try:
        sendable, sources, skipped = complaints(args.export, args.rows)
    except prepare.PreparationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not sendable:
        print(f"error: {args.export}: no complaint to send", file=sys.stderr)
        return 2
    grpc_client = client.GrpcClient(args.host, args.port, config.model_name)
    try:
        for start in range(0, len(sendable), args.batch):
            grpc_client.classify(sendable[start : start + args.batch])
    except client.ServingError as error:
        print(f"error after {start:,} complaints: {error}", file=sys.stderr)
        return 1
    print(
        f"sent {len(sendable):,} complaints from {args.export.name} to "
        f"{args.host}:{args.port} ({skipped:,} rows without a required field skipped)"
    )
    if args.outcomes_out:
        today = datetime.datetime.now(datetime.timezone.utc).date()
        try:
            written = write_outcomes(
                args.outcomes_out, args.outcomes_from or args.export, sources, today
            )
        except prepare.PreparationError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(
            f"wrote {written:,} outcomes to {args.outcomes_out} "
            f"({len(sources) - written:,} not final yet)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
