"""Load: N Beam runs started at once on one MariaDB store, N raised until something gives.

    python -m bench.load                          # N = 1, 2, 4, 8; 3,000 rows, 150 steps
    python -m bench.load --counts 1,2 --rows 1000 --train-steps 20   # smoke

Each level starts N `python runners/beam_runner.py` processes in the same
second, each a pipeline of its own (runs of one pipeline on one database
are refused by design, docs/concurrency.md) with its own pipeline root and
serving folder, all on one ML Metadata database of the project's MariaDB
(scripts/dev_services.sh) and the same prepared spans. Per level it records
each run's exit status and wall time, the lowest memory available while the
runs were alive, what ML Metadata holds afterwards (executions left RUNNING,
completed nodes, versions served) and errors the store gave back (deadlocks,
lost connections, too many connections). The next level starts only when
every run of this one finished and memory was left: the first level where
something gives is the last measured. Writes its section of
docs/benchmarks.md and prints it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench.object_store import sourced
from bench.run import (
    PUSHES_ON_A_SLICE,
    command_line,
    machine,
    publish_section,
    run_arguments,
    run_config,
)
from data import prepare
from settings.configs import REPO_ROOT, PipelineConfig

SERVICES_SCRIPT = REPO_ROOT / "scripts" / "dev_services.sh"
DATABASE = "mlmd_load"
# Fewer than this many GiB available at a level's peak: the next level would swap.
MIN_AVAILABLE_GIB = 3.0
# What the store can answer under load, as ML Metadata's MySQL source and
# MariaDB word it; counted in every run's output.
STORE_ERRORS = {
    "deadlock": re.compile(r"Deadlock found", re.I),
    "lock wait timeout": re.compile(r"Lock wait timeout", re.I),
    "too many connections": re.compile(r"Too many connections", re.I),
    "connection lost": re.compile(r"Lost connection|server has gone away", re.I),
    "aborted": re.compile(r"\bABORTED\b"),
    # ML Metadata's tables created by several runs at once on an empty database
    "schema race": re.compile(r"concurrent connection to the empty database"),
}


def _available_gib() -> float:
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError("no MemAvailable in /proc/meminfo")


class LowestMemory(threading.Thread):
    """Samples MemAvailable every half second until stopped; keeps the lowest."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.lowest = _available_gib()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.5):
            self.lowest = min(self.lowest, _available_gib())

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.lowest


def level_configs(args, count: int, servers: dict, spans: Path) -> list[PipelineConfig]:
    return [
        run_config(
            args.work_dir / f"n{count}" / f"run{index}",
            spans,
            args,
            pipeline_name=f"cfpb-load-n{count}-{index}",
            mysql_host=servers["CFPB_MYSQL_HOST"],
            mysql_port=int(servers["CFPB_MYSQL_PORT"]),
            mysql_user=servers["CFPB_MYSQL_USER"],
            mysql_password_file=servers["CFPB_MYSQL_PASSWORD_FILE"],
            mysql_database=DATABASE,
            **PUSHES_ON_A_SLICE,
        )
        for index in range(count)
    ]


def run_level(configs: list[PipelineConfig], servers: dict, logs: Path) -> dict:
    """Starts every run at once; waits for all. Exit statuses, wall times, memory."""
    memory = LowestMemory()
    before = memory.lowest
    memory.start()
    started = time.monotonic()
    runs = []
    for config in configs:
        log = open(logs / f"{config.pipeline_name}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "runners/beam_runner.py", *config.as_flags()],
            cwd=REPO_ROOT,
            env=servers,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        runs.append((config, process, log))
    results = []
    for config, process, log in runs:
        code = process.wait()
        log.close()
        results.append({"config": config, "code": code, "wall": time.monotonic() - started})
    lowest = memory.stop()
    return {"runs": results, "wall": time.monotonic() - started, "before": before, "lowest": lowest}


def store_state(configs: list[PipelineConfig], logs: Path) -> dict:
    """What ML Metadata and the serving folders hold after a level, per run
    (read as bench.faults reads a cell's)."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    from bench import faults

    left_running = 0
    completed: list[int] = []
    served: list[int] = []
    errors: dict[str, int] = {}
    for config in configs:
        left_running += faults.left_running(config)
        completed.append(
            sum(
                e.last_known_state in (pb.Execution.COMPLETE, pb.Execution.CACHED)
                for e in faults.executions(config)
            )
        )
        served.append(faults.versions_served(config))
        text = (logs / f"{config.pipeline_name}.log").read_text(errors="replace")
        for name, pattern in STORE_ERRORS.items():
            found = len(pattern.findall(text))
            if found:
                errors[name] = errors.get(name, 0) + found
    return {
        "left_running": left_running,
        "completed": completed,
        "served": served,
        "errors": errors,
    }


def _max_used_connections(servers: dict) -> str:
    """MariaDB's own count of the most connections it held at once."""
    query = subprocess.run(
        [
            "mariadb",
            f"--host={servers['CFPB_MYSQL_HOST']}",
            f"--port={servers['CFPB_MYSQL_PORT']}",
            f"--user={servers['CFPB_MYSQL_USER']}",
            f"--password={Path(servers['CFPB_MYSQL_PASSWORD_FILE']).read_text().strip()}",
            "--batch",
            "--skip-column-names",
            "-e",
            "SHOW GLOBAL STATUS LIKE 'Max_used_connections'",
        ],
        capture_output=True,
        text=True,
    )
    return query.stdout.split()[-1] if query.returncode == 0 and query.stdout else "?"


def measure(args) -> list[dict]:
    shutil.rmtree(args.work_dir, ignore_errors=True)
    logs = args.work_dir / "logs"
    logs.mkdir(parents=True)
    services_env = {"CFPB_SERVICES_DIR": str(args.work_dir / "services")}
    environment = {**os.environ, **services_env}
    subprocess.run([str(SERVICES_SCRIPT), "start"], env=environment, check=True)
    levels = []
    try:
        servers = {**environment, **sourced(args.work_dir / "services" / "env.sh")}
        spans = args.work_dir / "spans"
        prepare.prepare_all(prepare.RAW_DIR, spans, args.rows)  # outside every timing
        for count in args.counts:
            print(f"[bench.load] {count} run(s) at once ...", flush=True)
            configs = level_configs(args, count, servers, spans)
            level = run_level(configs, servers, logs)
            level.update(store_state(configs, logs))
            level["count"] = count
            level["max_connections_used"] = _max_used_connections(servers)
            levels.append(level)
            failed = [r for r in level["runs"] if r["code"] != 0]
            print(
                f"[bench.load] {count}: {len(failed)} failed, {level['wall']:.0f} s, "
                f"lowest available {level['lowest']:.1f} GiB",
                flush=True,
            )
            if failed or level["left_running"] or level["lowest"] < MIN_AVAILABLE_GIB:
                break
    finally:
        subprocess.run([str(SERVICES_SCRIPT), "destroy"], env=environment, check=False)
    return levels


def render(levels: list[dict], args, argv: Sequence[str] | None) -> str:
    rows = f"{args.rows:,} rows per span" if args.rows else "every row"
    lines = [
        "## Load: N runs at once on one MariaDB store",
        "",
        f"Written by `{command_line('bench.load', argv)}` on {time.strftime('%Y-%m-%d')}. "
        f"Machine: {machine()}.",
        f"Data: the bundled exports, {rows}; {args.train_steps} training steps. Each level "
        "starts N Beam runs in the same second, each its own pipeline (pipeline root, "
        "serving folder) on one ML Metadata database of the project's MariaDB; the next "
        f"level starts only if every run finished and at least {MIN_AVAILABLE_GIB:.0f} GiB "
        "stayed available.",
        "",
        "| N at once | finished | wall, all (s) | wall per run (s) | slowest run (s) "
        "| lowest memory available (GiB) | left RUNNING | nodes completed per run "
        "| versions served per run | store errors in the output | MariaDB connections (max used) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: |",
    ]
    for level in levels:
        finished = sum(r["code"] == 0 for r in level["runs"])
        errors = ", ".join(f"{k} {v}" for k, v in level["errors"].items()) or "none"
        lines.append(
            f"| {level['count']} | {finished}/{level['count']} | {level['wall']:.0f} "
            f"| {level['wall'] / level['count']:.0f} "
            f"| {max(r['wall'] for r in level['runs']):.0f} "
            f"| {level['lowest']:.1f} of {level['before']:.1f} | {level['left_running']} "
            f"| {sorted(set(level['completed']))} | {sorted(set(level['served']))} "
            f"| {errors} | {level['max_connections_used']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = run_arguments("bench.load", __doc__, REPO_ROOT / "build" / "bench-load")
    parser.add_argument(
        "--counts",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2, 4, 8],
        help="runs at once per level, in order (default: 1,2,4,8)",
    )
    parser.set_defaults(rows=3000, train_steps=150)  # the test suite's slice: minutes, not hours
    args = parser.parse_args(argv)
    levels = measure(args)
    publish_section(render(levels, args, argv), args.output, "bench.load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
