"""The fault matrix (docs/faults.md): each fault dealt to a real Beam run, then the next run.

    python -m bench.faults                        # every cell (~30 min here)
    python -m bench.faults --cells kill:Trainer,disk:Transform --output /tmp/faults.md

A cell is `<fault>:<node>`: the fault is dealt when the run's progress says
the node started. Faults:

  kill          SIGKILL to the run's process group (its Beam workers too) once
                the node's execution is in ML Metadata; SQLite store
  kill-mariadb  the same, ML Metadata on MariaDB
  disk          the pipeline root's disk (a 256 MB tmpfs) filled to the last byte
  mariadb       the MariaDB server stopped (SIGTERM), down 3 s, started again
  objectstore   the object store (emulator and front) stopped, down 3 s, started
                again; pipeline root, serving folder and reports in gs://, ML
                Metadata on MariaDB
  objectstore-outage  the same, down 5 minutes: longer than the clients'
                retries (TF's GCS filesystem: 10 tries, ~3 min of backoff)

Each cell runs in fresh roots and records what a user and an operator see:
the run's exit status and its message, whether a traceback was printed, the
node's execution state and the executions left RUNNING or NEW in ML Metadata
right after the fault, the complete versions served; then the same command
again (the fault gone): its exit status, what it ran or took from the cache,
executions left RUNNING, versions served. A cell holds when the first run
fails with one clear message or recovers, nothing half-pushed is served,
nothing stays RUNNING after the next run and the next run pushes one model.

Runs in a network namespace with loopback only (like bench.object_store):
a client that missed the local servers' settings fails instead of leaving
the machine. Servers (scripts/dev_services.sh, scripts/object_store.sh) are
started here and destroyed at the end. Writes docs/faults.md's table (its
marked section) and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bench.object_store import INSIDE, in_loopback_namespace, sourced
from bench.run import PUSHES_ON_A_SLICE, command_line, machine, publish_section, run_config
from pipeline import node_ids
from settings.configs import ENV_PREFIX, REPO_ROOT, PipelineConfig

DEFAULT_OUTPUT = REPO_ROOT / "docs" / "faults.md"
SERVICES = REPO_ROOT / "scripts" / "dev_services.sh"
OBJECT_STORE = REPO_ROOT / "scripts" / "object_store.sh"
DISK_MB = 256  # room for the pipeline root of a small run, many times over
DOWN_SECONDS = 3  # long enough for a client's retries on one connection to give up
OUTAGE_SECONDS = 300  # longer than any client's retries: the run must give up
# The nodes that do work (resolvers only read ML Metadata), in the run's order.
EXECUTING_NODES = (
    node_ids.IMPORT_SCHEMA_GEN,
    node_ids.EXAMPLE_GEN,
    node_ids.STATISTICS_GEN,
    node_ids.EXAMPLE_VALIDATOR,
    node_ids.VALIDATION_GATE,
    node_ids.TRANSFORM,
    node_ids.TRAINER,
    node_ids.EVALUATOR,
    node_ids.PUSHER,
    node_ids.OPEN_EXAMPLE_GEN,
    node_ids.BULK_INFERRER,
    node_ids.SCORED_COMPLAINTS,
)
FAULTS = ("kill", "kill-mariadb", "disk", "mariadb", "objectstore", "objectstore-outage")
ON_THE_OBJECT_STORE = ("objectstore", "objectstore-outage")
DEFAULT_CELLS = (
    [f"kill:{node}" for node in EXECUTING_NODES]
    + ["kill-mariadb:Transform", "kill-mariadb:Trainer"]
    + ["disk:Transform", "disk:Trainer", "disk:Evaluator"]
    + ["mariadb:CsvExampleGen", "mariadb:Transform", "mariadb:Evaluator"]
    + ["objectstore:Transform", "objectstore:Trainer", "objectstore-outage:Trainer"]
)


class DiskUnavailable(RuntimeError):
    """No tmpfs can be mounted here (not root, no CAP_SYS_ADMIN)."""


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_MB mounted at `path`: a disk that can be filled."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        raise DiskUnavailable(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk: Path) -> None:
    """Writes `disk`/filler until the disk has no space left."""
    try:
        with open(disk / "filler", "wb") as out:
            while True:
                out.write(b"\0" * (1 << 20))
                out.flush()
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
    usage = shutil.disk_usage(disk)
    print(f"[bench.faults] filled {disk}: {usage.used >> 20} MB used, {usage.free} bytes free")


def run_acting_at(
    config: PipelineConfig, env: dict, node_id: str, act: Callable[[subprocess.Popen], None]
) -> tuple[int, str]:
    """Runs the Beam runner in a process group of its own; calls `act(process)`
    when its progress says `node_id` started. Returns (exit status, output)."""
    run = subprocess.Popen(
        [sys.executable, "runners/beam_runner.py", *config.as_flags()],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert run.stdout is not None
    lines = []
    for line in run.stdout:
        lines.append(line)
        if line.startswith(f"  > {node_id} "):
            act(run)
    return run.wait(timeout=120), "".join(lines)


def kill_in_node(run: subprocess.Popen, config: PipelineConfig, node_id: str) -> None:
    """SIGKILL to the run's process group once ML Metadata holds the node's
    execution (TFX registers it RUNNING before the executor starts): the kill
    lands inside the node, not before it. A node that finishes before the
    first look is killed after it; the table shows its execution's state."""
    deadline = time.monotonic() + 60
    while not executions(config, node_id) and time.monotonic() < deadline:
        time.sleep(0.25)
    os.killpg(run.pid, signal.SIGKILL)


def restart_server(pattern: str, servers: dict) -> None:
    """Stops the project's server whose command line matches `pattern` (pgrep
    -f) with SIGTERM, its clean shutdown as a restart for an upgrade or a
    failover does; leaves it down DOWN_SECONDS; starts it again with
    scripts/dev_services.sh, on the same port and data."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    if not found.stdout.split():
        raise RuntimeError(f"no process matches {pattern!r}")
    pid = int(found.stdout.split()[0])
    os.kill(pid, signal.SIGTERM)
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    time.sleep(DOWN_SECONDS)
    started = subprocess.run([str(SERVICES), "start"], env=servers, capture_output=True, text=True)
    if started.returncode != 0:
        raise RuntimeError(started.stdout + started.stderr)


def restart_mariadb(servers: dict) -> None:
    restart_server(f"mariadbd .*--port={servers['CFPB_MYSQL_PORT']} ", servers)


def restart_broker(servers: dict) -> None:
    """Restarts the Celery broker (Redis; its append-only log keeps the queue)."""
    port = urllib.parse.urlsplit(servers["AIRFLOW__CELERY__BROKER_URL"]).port
    restart_server(f"redis-server 127.0.0.1:{port}", servers)


def restart_object_store(store_env: dict, down_s: float = DOWN_SECONDS) -> None:
    """Stops the emulator and its front, `down_s`, starts both again (the
    same ports and objects: scripts/object_store.sh keeps them)."""
    subprocess.run([str(OBJECT_STORE), "stop"], env=store_env, check=True, capture_output=True)
    time.sleep(down_s)
    subprocess.run([str(OBJECT_STORE), "start"], env=store_env, check=True, capture_output=True)


def executions(config: PipelineConfig, node_id: str | None = None) -> list:
    """The pipeline's executions in ML Metadata (of one node when given)."""
    from ml_metadata import metadata_store

    from settings import metadata

    store = metadata_store.MetadataStore(metadata.connection_config(config))
    kind, name = (
        ("pipeline", config.pipeline_name)
        if node_id is None
        else ("node", node_ids.node_context_name(config.pipeline_name, node_id))
    )
    context = store.get_context_by_type_and_name(kind, name)
    return store.get_executions_by_context(context.id) if context else []


def left_running(config: PipelineConfig) -> int:
    from ml_metadata.proto import metadata_store_pb2 as pb

    unfinished = (pb.Execution.RUNNING, pb.Execution.NEW)
    return sum(e.last_known_state in unfinished for e in executions(config))


def versions_served(config: PipelineConfig) -> int:
    """Complete versions (with their saved_model.pb) in the serving folder."""
    import tensorflow as tf

    from serving import versions

    gfile = tf.io.gfile
    model_dir = f"{config.serving_model_dir.rstrip('/')}/{config.model_name}"
    if not gfile.exists(model_dir):
        return 0
    numbers = versions.version_numbers(gfile.listdir(model_dir))
    return sum(gfile.exists(f"{model_dir}/{v}/{versions.SAVED_MODEL_FILE}") for v in numbers)


def _state_name(execution) -> str:
    from ml_metadata.proto import metadata_store_pb2 as pb

    return pb.Execution.State.Name(execution.last_known_state)


def _message(output: str) -> str:
    """What the run said about its failure: its one failure line, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("x ", "error:")):
            return line
    return lines[-1] if lines else ""


def _ran(output: str) -> str:
    """'N ran, M cached' from the run summary's first line."""
    for line in output.splitlines():
        if line.startswith("Run summary:") and "(" in line:
            return line.split("(", 1)[1].split(")", 1)[0]
    return "no summary"


def without_settings(env: dict) -> dict:
    """`env` without the CFPB_<SETTING> variables: a cell's config is all in its
    flags, and the servers' env.sh sets CFPB_MYSQL_* (an SQLite cell given
    them would run on MariaDB)."""
    settings = {ENV_PREFIX + field.name.upper() for field in dataclasses.fields(PipelineConfig)}
    return {name: value for name, value in env.items() if name not in settings}


def cell_config(fault: str, node: str, root: Path, args, servers: dict) -> PipelineConfig:
    settings: dict = {}
    if fault in ("kill-mariadb", "mariadb", *ON_THE_OBJECT_STORE):
        settings.update(
            mysql_host=servers["CFPB_MYSQL_HOST"],
            mysql_port=int(servers["CFPB_MYSQL_PORT"]),
            mysql_user=servers["CFPB_MYSQL_USER"],
            mysql_password_file=servers["CFPB_MYSQL_PASSWORD_FILE"],
            mysql_database=f"mlmd_{fault.replace('-', '_')}_{node.lower()}",
        )
    if fault == "disk":
        settings["pipeline_root"] = str(root / "disk" / "pipeline_root")
    if fault in ON_THE_OBJECT_STORE:
        prefix = f"gs://{servers['CFPB_BUCKET']}/faults/{root.name}"
        settings.update(
            pipeline_root=f"{prefix}/pipeline_root",
            serving_model_dir=f"{prefix}/serving_model",
            report_dir=f"{prefix}/reports",
        )
    return run_config(root, args.work_dir / "spans", args, **PUSHES_ON_A_SLICE, **settings)


def run_cell(cell: str, args, servers: dict) -> dict:
    fault, node = cell.split(":")
    root = args.work_dir / f"{fault}-{node}"
    config = cell_config(fault, node, root, args, servers)
    root.mkdir(parents=True, exist_ok=True)  # its logs: a gs:// cell writes nothing else here
    acts: dict[str, Callable[[subprocess.Popen], None]] = {
        "kill": lambda run: kill_in_node(run, config, node),
        "kill-mariadb": lambda run: kill_in_node(run, config, node),
        "disk": lambda run: fill(root / "disk"),
        "mariadb": lambda run: restart_mariadb(servers),
        "objectstore": lambda run: restart_object_store(servers),
        "objectstore-outage": lambda run: restart_object_store(servers, OUTAGE_SECONDS),
    }
    print(f"[bench.faults] {cell} ...", flush=True)
    with small_disk(root / "disk") if fault == "disk" else contextlib.nullcontext():
        code, output = run_acting_at(config, without_settings(servers), node, acts[fault])
        (root / "fault.log").write_text(output)
        node_states = [_state_name(e) for e in executions(config, node)]
        served_after = versions_served(config)
        after = {
            "code": code,
            "message": _message(output),
            "traceback": "Traceback" in output,
            "node": node_states[-1] if node_states else "none",
            "left_running": left_running(config),
            "served": served_after,
        }
        if fault == "disk":
            (root / "disk" / "filler").unlink()
        rerun = subprocess.run(
            [sys.executable, "runners/beam_runner.py", *config.as_flags()],
            cwd=REPO_ROOT,
            env=without_settings(servers),
            capture_output=True,
            text=True,
            timeout=900,
        )
        (root / "next.log").write_text(rerun.stdout + rerun.stderr)
        nxt = {
            "code": rerun.returncode,
            "ran": _ran(rerun.stdout),
            "left_running": left_running(config),
            "served": versions_served(config),
        }
    holds = (
        (code == 0 or not after["traceback"])
        and served_after <= 1  # a whole model or none: never a half-pushed one
        and nxt["code"] == 0
        and nxt["left_running"] == 0
        and nxt["served"] == 1
    )
    print(f"[bench.faults] {cell}: {'holds' if holds else 'FAILS'}", flush=True)
    return {"cell": cell, "after": after, "next": nxt, "holds": holds}


def measure(args) -> list[dict]:
    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    env = {
        **os.environ,
        "CFPB_SERVICES_DIR": str(args.work_dir / "services"),
        "CFPB_OBJECT_STORE_DIR": str(args.work_dir / "object_store"),
    }
    subprocess.run([str(SERVICES), "start"], env=env, check=True)
    subprocess.run([str(OBJECT_STORE), "start"], env=env, check=True)
    try:
        servers = {
            **env,
            **sourced(args.work_dir / "services" / "env.sh"),
            **sourced(args.work_dir / "object_store" / "env.sh"),
        }
        os.environ.update(servers)  # this process reads gs:// serving folders too
        from data import prepare

        spans = args.work_dir / "spans"
        prepare.prepare_all(prepare.RAW_DIR, spans, max_rows=args.rows)
        results = []
        for cell in args.cells:
            try:
                results.append(run_cell(cell, args, servers))
            except Exception as error:  # the bench's own failure: record it, go on
                print(f"[bench.faults] {cell}: the bench failed: {error!r}", flush=True)
                results.append({"cell": cell, "error": repr(error)})
    finally:
        subprocess.run([str(OBJECT_STORE), "stop"], env=env, check=False)
        subprocess.run([str(SERVICES), "destroy"], env=env, check=False)
    return results


def render(results: list[dict], argv: Sequence[str] | None) -> str:
    lines = [
        "## The matrix, as last run",
        "",
        f"Written by `{command_line('bench.faults', argv)}` on {time.strftime('%Y-%m-%d')}. "
        f"Machine: {machine()}. Each cell: the test suite's small run (3,000 rows per "
        "span, 150 steps) in fresh roots, the fault dealt when the node started, then the "
        "same command again.",
        "",
        "| fault: node | run: exit, message | traceback | node's execution "
        "| left RUNNING | versions served | next run: exit | it ran | left RUNNING "
        "| versions served | holds |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['cell']} | the bench failed: {r['error'][:150]} |" + " |" * 9)
            continue
        after, nxt = r["after"], r["next"]
        message = after["message"].replace("|", "\\|")
        if len(message) > 160:
            message = message[:157] + "..."
        lines.append(
            f"| {r['cell']} | {after['code']}: {message} | {'yes' if after['traceback'] else 'no'} "
            f"| {after['node']} | {after['left_running']} | {after['served']} "
            f"| {nxt['code']} | {nxt['ran']} | {nxt['left_running']} | {nxt['served']} "
            f"| {'yes' if r['holds'] else '**no**'} |"
        )
    return "\n".join(lines)


def cells(text: str) -> list[str]:
    """The --cells value: '<fault>:<node>,...', each fault in FAULTS, each node in EXECUTING_NODES."""
    chosen = text.split(",")
    for cell in chosen:
        fault, _, node = cell.partition(":")
        if fault not in FAULTS or node not in EXECUTING_NODES:
            raise argparse.ArgumentTypeError(
                f"{cell!r}: a cell is <fault>:<node>, the fault one of {', '.join(FAULTS)}, "
                f"the node one of {', '.join(EXECUTING_NODES)}"
            )
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--cells",
        type=cells,
        default=DEFAULT_CELLS,
        help="comma-separated <fault>:<node> cells (default: the whole matrix)",
    )
    parser.add_argument("--rows", type=int, default=3000, help="rows per span")
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "build" / "bench-faults")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if os.environ.get(INSIDE) != "1":
        return in_loopback_namespace("bench.faults", sys.argv[1:] if argv is None else list(argv))
    results = measure(args)
    publish_section(render(results, argv), args.output, "bench.faults")
    return 0 if all(r.get("holds") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
