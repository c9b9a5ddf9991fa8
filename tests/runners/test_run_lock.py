"""Faults, with real processes and real signals: a second run started while a
first one is in Transform is refused; the first, killed with SIGKILL in the
middle of Transform, is finished by the next run, which reuses what had
finished, pushes one model and leaves no execution looking alive."""

import datetime
import multiprocessing
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
from runners import run_lock
from settings import metadata
from settings.configs import REPO_ROOT
from tests.conftest import plant_running, run_beam_runner, small_config

pytestmark = pytest.mark.e2e
# Components that finished before Transform and must answer from cache.
BEFORE_TRANSFORM = ("CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator")


def _executions(config, node_id):
    store = metadata_store.MetadataStore(metadata.connection_config(config))
    context = store.get_context_by_type_and_name(
        "node", node_ids.node_context_name(config.pipeline_name, node_id)
    )
    return store.get_executions_by_context(context.id) if context else []


def _wait_for_running_transform(process, config, deadline):
    """Reads the run's progress until Transform starts, then polls ML Metadata
    until its execution is registered as RUNNING (the executor is working)."""
    output = []
    for line in process.stdout:
        output.append(line)
        if line.startswith("  > Transform"):
            break
        assert time.monotonic() < deadline, "".join(output)
    else:
        pytest.fail("the run ended before Transform:\n" + "".join(output))
    while time.monotonic() < deadline:
        try:
            if any(
                e.last_known_state == pb.Execution.RUNNING for e in _executions(config, "Transform")
            ):
                return "".join(output)
        except Exception:  # the runner is writing: SQLite may refuse a reader for a moment
            pass
        time.sleep(0.2)
    pytest.fail("Transform never showed as RUNNING:\n" + "".join(output))


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    config = small_config(tmp_path_factory.mktemp("faults"))
    command = [sys.executable, "runners/beam_runner.py", *config.as_flags()]
    first = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal job would be
    )
    try:
        first_output = _wait_for_running_transform(first, config, time.monotonic() + 900)
        second = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    killed = [
        e for e in _executions(config, "Transform") if e.last_known_state == pb.Execution.RUNNING
    ]
    code, output = run_beam_runner(config.as_flags())
    return config, first, first_output, second, killed, code, output


def test_a_second_run_is_refused_while_the_first_holds_the_store(faults):
    config, first, _, second, *_ = faults
    assert second.returncode == 3, second.stdout + second.stderr
    assert f"another run is using {config.metadata_path} (pid {first.pid}" in second.stderr
    assert "Preparing spans" not in second.stdout  # refused before touching anything


def test_a_run_killed_in_transform_is_finished_by_the_next_run(faults):
    config, first, _, _, killed, code, output = faults
    assert first.returncode == -signal.SIGKILL
    assert len(killed) == 1  # killed while Transform's executor was working
    assert code == 0, output
    assert "Marked as canceled, left running by an interrupted run: Transform (run " in output

    canceled = [e for e in _executions(config, "Transform") if e.id == killed[0].id][0]
    assert canceled.last_known_state == pb.Execution.CANCELED
    assert "killed" in canceled.custom_properties[run_lock.INTERRUPTED_KEY].string_value
    for node_id in BEFORE_TRANSFORM:
        newest = max(_executions(config, node_id), key=lambda e: e.id)
        assert newest.last_known_state == pb.Execution.CACHED, node_id
    store = metadata_store.MetadataStore(metadata.connection_config(config))
    assert not [
        e
        for e in store.get_executions()
        if e.last_known_state in (pb.Execution.RUNNING, pb.Execution.NEW)
    ]
    versions = list((Path(config.serving_model_dir) / config.model_name).iterdir())
    assert len(versions) == 1
    assert "Run finished" in output and "FAILED" not in output


def test_the_lock_is_released_when_a_run_ends(tmp_path):
    config = small_config(tmp_path)
    with run_lock.exclusive_run(config):
        with pytest.raises(run_lock.RunLocked, match=f"pid {os.getpid()}"):
            with run_lock.exclusive_run(config):
                pass
    with run_lock.exclusive_run(config):  # free again
        pass
    assert run_lock.lock_files(config) == [
        Path(f"{config.metadata_path}.lock"),
        Path(config.pipeline_root) / run_lock.LOCK_NAME,
    ]


def test_airflow_tasks_share_the_store_and_keep_a_beam_run_out(tmp_path):
    config = small_config(tmp_path)
    with run_lock.shared_task(config), run_lock.shared_task(config):  # two tasks at once
        with pytest.raises(run_lock.RunLocked, match="Airflow tasks of this store are running"):
            with run_lock.exclusive_run(config):
                pass
    with run_lock.exclusive_run(config):
        with pytest.raises(run_lock.RunLocked, match=f"pid {os.getpid()}"):
            with run_lock.shared_task(config):
                pass
    with run_lock.shared_task(config):  # free again
        pass


def _store_with_running(runs: tuple[str, ...]):
    """An in-memory ML Metadata store where each of `runs` of pipeline "p" left
    a Transform execution RUNNING; returns the store and {run: execution id}."""
    config = pb.ConnectionConfig()
    config.fake_database.SetInParent()
    store = metadata_store.MetadataStore(config)
    return store, plant_running(store, "p", "Transform", runs)


def test_a_failed_run_cancels_only_its_own_executions_left_running():
    store, ids = _store_with_running(("failed", "live"))

    is_dead = lambda run, node: run == "failed"  # noqa: E731  (what the failed run passes)
    cancelled = run_lock.cancel_interrupted(store, "p", is_dead, run_lock.FAILED_RUN_NOTE)
    assert cancelled == ["Transform (run failed)"]
    failed, live = store.get_executions_by_id([ids["failed"], ids["live"]])
    assert failed.last_known_state == pb.Execution.CANCELED
    assert "its run failed" in failed.custom_properties[run_lock.INTERRUPTED_KEY].string_value
    assert live.last_known_state == pb.Execution.RUNNING  # another run's: maybe alive


def _attempt_elsewhere(config, run_id: str, node_id: str, answer) -> None:
    """Another process tries the task's lock (POSIX record locks never
    exclude their own process); puts what it got in `answer`."""
    try:
        with run_lock.task_attempt(config, run_id, node_id):
            answer.put("held")
    except run_lock.RunLocked as error:
        answer.put(str(error))


def _try_elsewhere(config, run_id: str, node_id: str) -> str:
    context = multiprocessing.get_context("fork")
    answer = context.Queue()
    process = context.Process(target=_attempt_elsewhere, args=(config, run_id, node_id, answer))
    process.start()
    process.join(timeout=60)
    return answer.get(timeout=5)


def test_a_second_live_attempt_of_an_airflow_task_is_refused(tmp_path):
    # SQLite: the task's lock is a byte of <store>.tasks.lock; on MySQL a named
    # lock of the server (tests/runners/test_team_servers.py, real processes).
    config = small_config(tmp_path)
    run, other_run = "manual__2026-12-05T07:00:00+00:00", "manual__2026-12-05T08:00:00+00:00"

    with run_lock.task_attempt(config, run, "Transform"):
        assert "another attempt of task Transform of run manual__2026-12-05T07:00" in (
            _try_elsewhere(config, run, "Transform")
        )
        assert _try_elsewhere(config, other_run, "Transform") == "held"  # other tasks proceed
        assert _try_elsewhere(config, run, "Trainer") == "held"
    assert _try_elsewhere(config, run, "Transform") == "held"  # free once the attempt ends


def test_run_ids_tell_beam_runs_from_airflow_runs():
    # Which runs' leftovers a Beam run on MySQL may judge (run_lock.left_by_the_dead):
    # every id Airflow makes, and TFX's BeamDagRunner's; never a hand-given one.
    from airflow.utils.types import DagRunType

    now = datetime.datetime.now(datetime.timezone.utc)
    for run_type in DagRunType:
        run_id = run_type.generate_run_id(now)
        assert run_lock.AIRFLOW_RUN_ID.fullmatch(run_id), run_id
        assert not run_lock.BEAM_RUN_ID.fullmatch(run_id), run_id
    beam_run_id = now.strftime("%Y%m%d-%H%M%S.%f")  # tfx/orchestration/beam/beam_dag_runner.py
    assert run_lock.BEAM_RUN_ID.fullmatch(beam_run_id)
    assert not run_lock.AIRFLOW_RUN_ID.fullmatch(beam_run_id)
    assert not run_lock.AIRFLOW_RUN_ID.fullmatch("my-backfill-by-hand")
