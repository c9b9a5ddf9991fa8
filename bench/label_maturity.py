"""When is a complaint's dispute outcome final? Measured on the bundled exports.

    python -m bench.label_maturity            # writes its section of data/README.md
    python -m bench.label_maturity --output /tmp/maturity.md

Per export, by the week a complaint was received: its rows, the share still
`In progress` (no response yet), and of the responded ones the share whose
`Consumer disputed?` reads `Yes`, `No` or nothing, with the dispute rate's
95% interval (Wilson). If outcomes were final when an export is taken, the
dispute rate would not depend on how long before the export a complaint
arrived, and an empty field would mean the same in every week.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench.quality import wilson
from bench.run import command_line, publish_section
from data import prepare
from settings.configs import REPO_ROOT

DEFAULT_OUTPUT = REPO_ROOT / "data" / "README.md"


def weekly(source) -> tuple[str, list[dict]]:
    """(the export's newest received date, one row per received week, Monday first)."""
    import pandas as pd

    rows = pd.DataFrame(prepare.complaints_as_asked(source))
    received = pd.to_datetime(rows[prepare.DATE_COLUMN], errors="coerce")
    outcome = rows[prepare.LABEL_COLUMN].str.lower()
    open_ = rows["company_response"].isin(prepare.OPEN_RESPONSES)
    table = []
    for week, group in rows.groupby(received.dt.to_period("W-SUN")):
        closed = ~open_[group.index]
        answered = outcome[group.index][closed]
        disputed = int((answered == prepare.DISPUTED.lower()).sum())
        low, high = wilson(disputed, len(answered))
        table.append(
            {
                "week": f"{week.start_time:%Y-%m-%d}",
                "rows": len(group),
                "open": float(open_[group.index].mean()),
                "responded": len(answered),
                "yes": disputed / max(len(answered), 1),
                "no": float((answered == prepare.NOT_DISPUTED.lower()).mean()),
                "empty": float((answered == "").mean()),
                "interval": (low, high),
            }
        )
    return f"{received.max():%Y-%m-%d}", table


def render(results: dict[str, tuple[str, list[dict]]], argv: Sequence[str] | None) -> str:
    lines = [
        "## Label maturity, measured",
        "",
        f"Written by `{command_line('bench.label_maturity', argv)}`. Per export and week "
        "received: rows, the share `In progress`, and of the responded complaints the "
        "share marked `Yes` (disputed), `No` and empty, with the dispute rate's 95% "
        "interval (Wilson).",
    ]
    for name, (newest, table) in results.items():
        lines += [
            "",
            f"### {name} (newest complaint received {newest})",
            "",
            "| week received | rows | in progress | responded | Yes | No | empty "
            "| dispute rate 95% interval |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for w in table:
            low, high = w["interval"]
            lines.append(
                f"| {w['week']} | {w['rows']:,} | {w['open']:.1%} | {w['responded']:,} "
                f"| {w['yes']:.1%} | {w['no']:.1%} | {w['empty']:.1%} "
                f"| {low:.3f} .. {high:.3f} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.label_maturity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--raw-dir", type=Path, default=prepare.RAW_DIR)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    results = {
        source.name: weekly(source)
        for source in sorted(prepare.raw_exports(args.raw_dir), key=lambda s: s.name)
    }
    publish_section(render(results, argv), args.output, "bench.label_maturity")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
