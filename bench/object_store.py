"""What the object store costs: one cold run with gs:// roots next to one with local roots.

    python -m bench.object_store          # bench.run's data (every row, 2000 steps)
    python -m bench.object_store --rows 3000 --train-steps 150 --output /tmp/store.md

Writes its own section of docs/benchmarks.md (the rest of the page is
bench.run's) and prints it. Both runs are `python runners/beam_runner.py` in a
fresh pipeline root and ML Metadata, as a user runs them, on the same spans:
the local run with every location on this disk, the bucket run with the data
root, pipeline root, serving folder and reports in `gs://` on the local object
store (scripts/object_store.sh: fake-gcs-server behind a TLS front), its ML
Metadata local as in the parity test. Spans are prepared before either run
is timed (in the folder and in the bucket).

It runs in a network namespace that has only loopback (it re-executes itself
under `unshare -n`), so a client that missed the local store's settings fails
instead of sending traffic off the machine. The front's and the emulator's
CPU time during the bucket run are measured: on 2 cores they compete with
the pipeline, and production has neither.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.run import (
    command_line,
    machine,
    publish_section,
    run_arguments,
    run_config,
    run_pipeline,
)
from data import prepare, storage
from settings.configs import REPO_ROOT, PipelineConfig

STORE_SCRIPT = REPO_ROOT / "scripts" / "object_store.sh"
BUCKET = "cfpb"
# Set in the re-executed process: it runs inside the namespace.
INSIDE = "CFPB_BENCH_LOOPBACK_ONLY"


def in_loopback_namespace(module: str, argv: Sequence[str]) -> int:
    """Runs `python -m module argv` in a new network namespace with loopback up
    (INSIDE set in it)."""
    unshare = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
    command = [sys.executable, "-m", module, *argv]
    try:
        return subprocess.run(
            [*unshare, "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command],
            env={**os.environ, INSIDE: "1"},
            cwd=REPO_ROOT,
        ).returncode
    except FileNotFoundError:
        print(f"{module}: needs unshare(1) and ip(8) (util-linux, iproute2)")
        return 2


def sourced(env_file: Path) -> dict[str, str]:
    """The variables `source env_file` sets (the store's one set of settings)."""
    out = subprocess.run(
        ["bash", "-c", f'source "{env_file}" && env -0'],
        env={},
        capture_output=True,
        check=True,
    ).stdout.decode()
    variables = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    return {k: v for k, v in variables.items() if k not in ("PWD", "SHLVL", "_", "OLDPWD")}


def _cpu_seconds(pid_file: Path) -> float:
    """User + system CPU time of the process in `pid_file` (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid_file.read_text().strip()}/stat").read_text().rsplit(")", 1)[1]
    utime, stime = fields.split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def _bytes_under(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _bucket_config(local: PipelineConfig, root: Path) -> PipelineConfig:
    prefix = f"gs://{BUCKET}/bench"
    return dataclasses.replace(
        local,
        data_root=f"{prefix}/spans",
        pipeline_root=f"{prefix}/pipeline_root",
        serving_model_dir=f"{prefix}/serving_model",
        report_dir=f"{prefix}/reports",
        metadata_path=str(root / "metadata.sqlite"),
    )


def measure(args) -> dict:
    """Both runs inside the namespace, the store started and stopped here."""
    shutil.rmtree(args.work_dir, ignore_errors=True)
    logs = args.work_dir / "logs"
    logs.mkdir(parents=True)
    store = args.work_dir / "store"
    store_env = {**os.environ, "CFPB_OBJECT_STORE_DIR": str(store), "CFPB_BUCKET": BUCKET}
    subprocess.run([str(STORE_SCRIPT), "start"], env=store_env, check=True)
    try:
        os.environ.update(sourced(store / "env.sh"))
        local_spans = args.work_dir / "local" / "spans"
        local = run_config(args.work_dir / "local", local_spans, args)
        bucket = _bucket_config(local, args.work_dir / "bucket")
        prepared = {}
        for label, config in (("local", local), ("bucket", bucket)):
            started = time.monotonic()
            prepare.prepare_all(prepare.RAW_DIR, storage.location(config.data_root), args.rows)
            prepared[label] = time.monotonic() - started
        local_run = run_pipeline(local, "local", logs)
        cpu_before = {name: _cpu_seconds(store / f"{name}.pid") for name in ("front", "emulator")}
        bucket_run = run_pipeline(bucket, "bucket", logs)
        cpu = {
            name: _cpu_seconds(store / f"{name}.pid") - cpu_before[name]
            for name in ("front", "emulator")
        }
        stored = _bytes_under(store / "data")
    finally:
        subprocess.run([str(STORE_SCRIPT), "stop"], env=store_env, check=False)
    return {
        "local": local_run,
        "bucket": bucket_run,
        "prepared": prepared,
        "cpu": cpu,
        "stored_bytes": stored,
    }


def render(results: dict, args, argv: Sequence[str] | None) -> str:
    local, bucket = results["local"], results["bucket"]
    rows = f"{args.rows:,} rows per span" if args.rows else "every row"
    lines = [
        "## What the object store costs: a cold run on gs:// roots",
        "",
        f"Written by `{command_line('bench.object_store', argv)}` on "
        f"{time.strftime('%Y-%m-%d')}. Machine: {machine()}.",
        f"Data: the bundled exports, {rows}; {args.train_steps} training steps. "
        "Both are cold runs of the Beam runner (fresh pipeline root and ML Metadata) on "
        "the same spans; the bucket run has its data root, pipeline root, serving folder "
        "and reports in `gs://` on the local object store (docs/object-store.md), "
        "inside a network namespace with loopback only.",
        "",
        "| component | local (s) | bucket (s) | bucket / local |",
        "| --- | ---: | ---: | ---: |",
    ]
    for node, (seconds, _) in local["nodes"].items():
        remote = bucket["nodes"].get(node, (0.0, "-"))[0]
        ratio = f"{remote / seconds:.1f}x" if seconds >= 1 else "-"
        lines.append(f"| {node} | {seconds:.1f} | {remote:.1f} | {ratio} |")
    lines += [
        f"| **whole run (wall)** | **{local['wall']:.0f}** | **{bucket['wall']:.0f}** | "
        f"**{bucket['wall'] / local['wall']:.1f}x** |",
        "",
        "| also measured | seconds |",
        "| --- | ---: |",
        f"| preparing the spans into the folder (before the runs) | "
        f"{results['prepared']['local']:.1f} |",
        f"| preparing the spans into the bucket (before the runs) | "
        f"{results['prepared']['bucket']:.1f} |",
        f"| CPU of the TLS front during the bucket run | {results['cpu']['front']:.0f} |",
        f"| CPU of the emulator during the bucket run | {results['cpu']['emulator']:.0f} |",
        "",
        f"The bucket held {results['stored_bytes'] / 2**20:.0f} MiB after the run. "
        "The front (a Python TLS proxy every request passes through) and the emulator "
        "run on the same 2 cores as the pipeline; a production store costs the pipeline "
        "neither, only its network round trips, which loopback does not show. So this "
        "measures how this project's own bucket path behaves (per-component I/O "
        "pattern), not what GCS would cost.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = run_arguments(
        "bench.object_store", __doc__, REPO_ROOT / "build" / "bench-object-store"
    )
    args = parser.parse_args(argv)
    if os.environ.get(INSIDE) != "1":
        return in_loopback_namespace(
            "bench.object_store", sys.argv[1:] if argv is None else list(argv)
        )
    results = measure(args)
    publish_section(render(results, args, argv), args.output, "bench.object_store")
    return 0


if __name__ == "__main__":
    sys.exit(main())
