"""How the pipeline's cost grows with rows: a cold Beam run per size and Beam mode.

    python -m bench.scale --rows 28000 280000 1000000     # writes docs/scale.md
    python -m bench.scale --rows 5000 --modes in_memory --train-steps 50   # smoke

The data: the real 2015 export (28,156 rows) resampled with replacement to N
rows, each row a real complaint with a fresh Complaint ID (so no row is
dropped as a duplicate of another span), written as an export file of the
same format with the same header. Preparation then applies its usual rules
(rows still "In progress" or received within 35 days of the newest one have
no final outcome and are scored, not trained on: ~38% of N). Value distributions are
the export's; the model's AUC on such data means nothing (rows repeat), only
the costs do.

Each run is `python runners/beam_runner.py` in a fresh pipeline root, as a
user runs it. Per component: wall time from ML Metadata, and the peak
resident memory of the runner's process tree (the runner and any Beam
worker processes), sampled every half second during that component. A run
that fails or exceeds --timeout is reported as such: that is where this
machine stops.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.run import command_line, machine, publish
from data import prepare
from pipeline import node_ids
from settings import beam
from settings.configs import REPO_ROOT, PipelineConfig

SOURCE_EXPORT = prepare.RAW_DIR / "complaints_2015-01_2015-03.csv.gz"
COMPLAINT_ID = "Complaint ID"
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "scale.md"
MODES = {
    "in_memory": "--direct_running_mode=in_memory --direct_num_workers=1",
    "multi_processing": "--direct_running_mode=multi_processing --direct_num_workers=2",
    # --beam-runner=flink on the cluster that CFPB_BEAM_* name (scripts/flink.sh
    # start, then source build/flink/env.sh); its processes count in the memory.
    "flink": "",
}
FLINK_DIR = REPO_ROOT / "build" / "flink"
SAMPLE_SECONDS = 0.5


def scaled_export(rows: int, out: Path, seed: int = 0, source: Path = SOURCE_EXPORT) -> Path:
    """Writes `rows` rows resampled from `source` with fresh complaint ids (module docstring)."""
    text, _ = prepare.decode(source.read_bytes(), source)
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    originals = list(reader)
    id_column = header.index(COMPLAINT_ID)
    rng = random.Random(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", newline="", encoding="utf-8", compresslevel=1) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for new_id in range(1, rows + 1):
            row = list(rng.choice(originals))
            row[id_column] = str(90_000_000 + new_id)  # beyond every real id
            writer.writerow(row)
    return out


class _MemorySampler:
    """Samples the resident memory of a process and its children, with timestamps."""

    def __init__(self, *pids: int):
        import psutil

        self._processes = [psutil.Process(pid) for pid in pids]
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import psutil

        while not self._stop.is_set():
            try:
                tree = [p for root in self._processes for p in [root, *root.children(True)]]
                rss = sum(p.memory_info().rss for p in tree if p.is_running())
                self.samples.append((time.time(), rss))
            except psutil.Error:
                pass
            self._stop.wait(SAMPLE_SECONDS)

    def stop(self):
        self._stop.set()
        self._thread.join()

    def peak(self, start: float = 0.0, end: float = float("inf")) -> int:
        return max((rss for t, rss in self.samples if start <= t <= end), default=0)


def _engine(mode: str) -> dict:
    """The settings that put a run's Beam work on `mode`."""
    if mode != "flink":
        return {"beam_pipeline_args": MODES[mode].split()}
    cluster = PipelineConfig.from_env()
    if cluster.beam_runner != "flink":
        raise SystemExit("mode flink: start the cluster and source build/flink/env.sh first")
    return beam.engine_settings(cluster)


def _cluster_pids(mode: str) -> list[int]:
    """The Flink cluster's JVMs (their SDK workers are their children)."""
    if mode != "flink":
        return []
    return [int(pid) for f in FLINK_DIR.glob("*.pid") for pid in f.read_text().split()]


def run_once(
    rows: int, mode: str, export: Path, work: Path, train_steps: int, timeout: float
) -> dict:
    """One cold run; its wall time, per-component seconds and peak memory, or its failure."""
    from reporting import summary

    root = work / f"{rows}-{mode}"
    shutil.rmtree(root, ignore_errors=True)
    config = PipelineConfig(
        raw_data_dir=str(export.parent),
        data_root=str(root / "spans"),
        pipeline_root=str(root / "pipeline_root"),
        metadata_path=str(root / "metadata.sqlite"),
        serving_model_dir=str(root / "serving_model"),
        report_dir=str(root / "reports"),
        train_steps=train_steps,
        **_engine(mode),
    )
    log = root / "run.log"
    root.mkdir(parents=True)
    print(f"[scale] {rows:,} rows, {mode}: log {log}", flush=True)
    started = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "runners" / "beam_runner.py"), *config.as_flags()],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        sampler = _MemorySampler(process.pid, *_cluster_pids(mode))
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = None
        finally:
            sampler.stop()
    result: dict[str, Any] = {
        "rows": rows,
        "mode": mode,
        "wall": time.monotonic() - started,
        "peak": sampler.peak(),
        "code": code,
        "log": log,
        "nodes": {},
    }
    try:
        run = summary.run_summary(config)
    except Exception:  # no store or no run: the failure is in the log
        return result
    for node in run.nodes.values():
        result["nodes"][node.node_id] = (
            node.seconds,
            node.state,
            sampler.peak(node.started, node.started + node.seconds + SAMPLE_SECONDS),
        )
    result["split_rows"] = dict(run.split_rows)
    result["anomalies"] = dict(run.anomalies)
    return result


_HEAVY = (
    node_ids.EXAMPLE_GEN,
    node_ids.STATISTICS_GEN,
    node_ids.TRANSFORM,
    node_ids.TRAINER,
    node_ids.EVALUATOR,
)


def render(results: list[dict], command: str, machine: str) -> str:
    lines = [
        "# Scale",
        "",
        f"Written by `{command}` on {time.strftime('%Y-%m-%d')}.",
        f"Machine: {machine}.",
        "",
        "Data: the 2015 export resampled with replacement to N rows with fresh complaint "
        "ids (bench/scale.py); ~38% have no final outcome yet and are scored, not trained "
        "on (data/README.md). Wall times in "
        "seconds; memory is the peak resident set of the runner and its Beam workers "
        "while the component ran.",
        "",
        "| rows | Beam mode | outcome | train rows | wall (s) | peak memory (GiB) | "
        + " | ".join(f"{n} s / GiB" for n in _HEAVY)
        + " |",
        "| ---: | --- | --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in _HEAVY) + " |",
    ]
    for r in results:
        outcome = (
            "ok"
            if r["code"] == 0
            else "timed out"
            if r["code"] is None
            else f"failed (exit {r['code']})"
        )
        cells = []
        for name in _HEAVY:
            seconds, state, peak = r["nodes"].get(name, (None, None, 0))
            cells.append("-" if seconds is None else f"{seconds:.0f} / {peak / 2**30:.1f}")
        train_rows = r.get("split_rows", {}).get("train")
        lines.append(
            f"| {r['rows']:,} | {r['mode']} | {outcome} | "
            f"{'-' if train_rows is None else format(train_rows, ',')} | {r['wall']:.0f} | "
            f"{r['peak'] / 2**30:.1f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[28_000, 280_000, 1_000_000])
    parser.add_argument(
        "--modes", nargs="+", choices=sorted(MODES), default=["in_memory", "multi_processing"]
    )
    parser.add_argument("--train-steps", type=int, default=PipelineConfig().train_steps)
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600,
        help="seconds before a run counts as beyond this machine",
    )
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "build" / "scale")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    results = []
    for rows in args.rows:
        export = scaled_export(
            rows, args.work_dir / f"raw-{rows}" / f"complaints_scaled_{rows}.csv.gz"
        )
        for mode in args.modes:
            results.append(
                run_once(rows, mode, export, args.work_dir, args.train_steps, args.timeout)
            )
            # After every run: a long curve stopped half-way keeps what it measured.
            publish(
                render(results, command_line("bench.scale", argv), machine()), args.output, "scale"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
