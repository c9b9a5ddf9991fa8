"""Cells of the fault matrix (docs/faults.md) run with real processes, a real
filesystem and a real MariaDB: the run fails with one clear message (or
recovers), nothing is served that was not whole, ML Metadata has no execution
left RUNNING, and the next run finishes. (SIGKILL in Transform:
tests/runners/test_run_lock.py.)"""

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from pipeline import node_ids
from settings import metadata
from settings.configs import REPO_ROOT
from tests.conftest import mysql_settings, run_beam_runner, small_config

pytestmark = pytest.mark.e2e

DISK_MB = 256  # room for the pipeline root of a small run, many times over


@contextlib.contextmanager
def small_disk(path: Path):
    """A tmpfs of DISK_MB mounted at `path`: a disk the test can fill."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:  # not root, or no CAP_SYS_ADMIN: say so, fake nothing
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk: Path) -> None:
    """Writes `disk`/filler until the disk has no space left."""
    filler = disk / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * (1 << 20))
                out.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC, error


def _run_acting_at(config, env: dict, node_id: str, act) -> tuple[int, str]:
    """Runs the Beam runner in a process of its own; calls `act()` when the
    progress says `node_id` started. Returns (exit status, output)."""
    run = subprocess.Popen(
        [sys.executable, "runners/beam_runner.py", *config.as_flags()],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in run.stdout:
        lines.append(line)
        if line.startswith(f"  > {node_id} "):
            act()
    return run.wait(timeout=60), "".join(lines)


def _left_running(config) -> list:
    return [
        e
        for e in _executions(config)
        if e.last_known_state in (pb.Execution.RUNNING, pb.Execution.NEW)
    ]


def _executions(config, node_id=None):
    store = metadata_store.MetadataStore(metadata.connection_config(config))
    if node_id is None:
        return store.get_executions()
    context = store.get_context_by_type_and_name(
        "node", node_ids.node_context_name(config.pipeline_name, node_id)
    )
    return store.get_executions_by_context(context.id) if context else []


def test_a_disk_full_in_the_trainer_is_one_line_and_the_next_run_finishes(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        config = small_config(tmp_path, pipeline_root=str(disk / "pipeline_root"))
        code, output = _run_acting_at(config, dict(os.environ), "Trainer", lambda: fill(disk))
        assert code == 1, output
        assert "  x Trainer failed after" in output, output
        trainer_output = f"{config.pipeline_root}/Trainer/"
        assert f"{os.strerror(errno.ENOSPC)} writing {trainer_output}" in output, output
        assert "Traceback" not in output  # the machine's fault: the message is the fix
        assert "Run stopped after" in output and "at Trainer (message above)" in output
        assert not Path(config.serving_model_dir).exists()  # nothing half-pushed
        states = [e.last_known_state for e in _executions(config, "Trainer")]
        assert states == [pb.Execution.FAILED]
        assert not _left_running(config)

        (disk / "filler").unlink()  # space again: the next run takes over
        code, output = run_beam_runner(config.as_flags())
        assert code == 0, output
        transform = max(_executions(config, "Transform"), key=lambda e: e.id)
        assert transform.last_known_state == pb.Execution.CACHED
        trainer = max(_executions(config, "Trainer"), key=lambda e: e.id)
        assert trainer.last_known_state == pb.Execution.COMPLETE
        assert len(list((Path(config.serving_model_dir) / config.model_name).iterdir())) == 1


def restart_mariadb(servers: dict) -> None:
    """Stops the MariaDB server (SIGTERM: its clean shutdown, as a restart for
    an upgrade or a failover does), leaves it down a moment, and starts it
    again with the project's script, on the same port and data."""
    port = servers["CFPB_MYSQL_PORT"]
    pid = int(
        subprocess.run(
            ["pgrep", "-f", f"mariadbd .*--port={port} "], capture_output=True, text=True
        ).stdout.split()[0]
    )
    os.kill(pid, signal.SIGTERM)
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    time.sleep(3)  # down long enough for TFX's retries to give up on a connection
    started = subprocess.run(
        [str(REPO_ROOT / "scripts" / "dev_services.sh"), "start"],
        env=servers,
        capture_output=True,
        text=True,
    )
    assert started.returncode == 0, started.stdout + started.stderr


@pytest.mark.integration
def test_a_mariadb_restart_mid_run_loses_nothing(servers, tmp_path):
    config = small_config(tmp_path, **mysql_settings(servers, "mlmd_restart"))
    code, output = _run_acting_at(config, servers, "Transform", lambda: restart_mariadb(servers))
    if code != 0:  # the restart fell while the run needed the store, not only its executor
        assert "ML Metadata cannot be reached" in output, output
        assert "Traceback" not in output, output
    assert not _left_running(config), output  # recorded, or canceled by the failed run

    rerun = subprocess.run(
        [sys.executable, "runners/beam_runner.py", *config.as_flags()],
        cwd=REPO_ROOT,
        env=servers,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert rerun.returncode == 0, output + rerun.stdout + rerun.stderr
    assert not _left_running(config)
    assert len(list((Path(config.serving_model_dir) / config.model_name).iterdir())) == 1
