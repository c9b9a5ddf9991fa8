"""Cells of the fault matrix (docs/faults.md) run with real processes, a real
filesystem and a real MariaDB: the run fails with one clear message (or
recovers), nothing is served that was not whole, ML Metadata has no execution
left RUNNING, and the next run finishes. (SIGKILL in Transform:
tests/runners/test_run_lock.py.) These are the cells the suite runs; every
cell runs with `python -m bench.faults`, whose helpers these share."""

import contextlib
import errno
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from bench import faults
from settings import metadata
from settings.configs import REPO_ROOT
from tests.conftest import mysql_settings, run_beam_runner, small_config

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def small_disk(path: Path):
    try:
        with faults.small_disk(path) as disk:
            yield disk
    except faults.DiskUnavailable as error:  # not root here: say so, fake nothing
        pytest.skip(str(error))


def test_a_disk_full_in_the_trainer_is_one_line_and_the_next_run_finishes(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        config = small_config(tmp_path, pipeline_root=str(disk / "pipeline_root"))
        code, output = faults.run_acting_at(
            config, dict(os.environ), "Trainer", lambda run: faults.fill(disk)
        )
        assert code == 1, output
        assert "  x Trainer failed after" in output, output
        trainer_output = f"{config.pipeline_root}/Trainer/"
        assert f"{os.strerror(errno.ENOSPC)} writing {trainer_output}" in output, output
        assert "Traceback" not in output  # the machine's fault: the message is the fix
        assert "Run stopped after" in output and "at Trainer (message above)" in output
        assert not Path(config.serving_model_dir).exists()  # nothing half-pushed
        states = [e.last_known_state for e in faults.executions(config, "Trainer")]
        assert states == [pb.Execution.FAILED]
        assert not faults.left_running(config)

        (disk / "filler").unlink()  # space again: the next run takes over
        code, output = run_beam_runner(config.as_flags())
        assert code == 0, output
        transform = max(faults.executions(config, "Transform"), key=lambda e: e.id)
        assert transform.last_known_state == pb.Execution.CACHED
        trainer = max(faults.executions(config, "Trainer"), key=lambda e: e.id)
        assert trainer.last_known_state == pb.Execution.COMPLETE
        assert len(list((Path(config.serving_model_dir) / config.model_name).iterdir())) == 1


@pytest.mark.integration
def test_a_mariadb_restart_mid_run_loses_nothing(servers, tmp_path):
    config = small_config(tmp_path, **mysql_settings(servers, "mlmd_restart"))
    code, output = faults.run_acting_at(
        config, servers, "Transform", lambda run: faults.restart_mariadb(servers)
    )
    if code != 0:  # the restart fell while the run needed the store, not only its executor
        assert "ML Metadata cannot be reached" in output, output
        assert "Traceback" not in output, output
    assert not faults.left_running(config), output  # recorded, or canceled by the failed run

    rerun = subprocess.run(
        [sys.executable, "runners/beam_runner.py", *config.as_flags()],
        cwd=REPO_ROOT,
        env=servers,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert rerun.returncode == 0, output + rerun.stdout + rerun.stderr
    assert not faults.left_running(config)
    assert len(list((Path(config.serving_model_dir) / config.model_name).iterdir())) == 1


def _open_and_tidy(config) -> list:
    from runners import beam_runner

    return beam_runner.cancel_left_running(config, metadata.connection_config(config))


@pytest.mark.integration
def test_runs_starting_at_once_on_an_empty_mysql_database_all_open_it(servers, tmp_path):
    # Each run opens ML Metadata before its first component; 24 runs at once
    # on a fresh database raced to create its tables and 8 failed ("a subset
    # of tables in MLMD instance ... Please retry": python -m bench.load).
    configs = [
        small_config(
            tmp_path / str(i), pipeline_name=f"race-{i}", **mysql_settings(servers, "mlmd_race")
        )
        for i in range(12)
    ]
    with multiprocessing.get_context("spawn").Pool(len(configs)) as pool:
        assert pool.map(_open_and_tidy, configs) == [[]] * len(configs)
