"""The team-server stack on real servers (no mocks): MariaDB for ML Metadata,
PostgreSQL for Airflow, Airflow's scheduler with the LocalExecutor.

The `servers` fixture (tests/conftest.py) starts both with
`scripts/dev_services.sh`. The DAG is triggered under a real scheduler, as a
team runs it.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

import pytest

from pipeline import pipeline
from reporting import report, summary
from runners import airflow_runner, run_lock
from tests.conftest import (
    EXECUTING_COMPONENTS,
    completed_component_types,
    mysql_settings,
    small_config,
    sourced_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]
DAG_ID = "cfpb-disputes"
# Bounded waits: a scheduler that never parses the DAG or a run that hangs
# fails the test instead of CI's overall time limit.
DAG_PARSE_TIMEOUT_S = 15 * 60
DAG_RUN_TIMEOUT_S = 45 * 60


def _postgres(env: dict):
    import psycopg2

    return psycopg2.connect(
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace(
            "postgresql+psycopg2://", "postgresql://"
        )
    )


def _query(env: dict, sql: str, *params) -> list:
    with _postgres(env) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _wait_for(what: str, timeout_s: float, check, scheduler_log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(10)
    pytest.fail(
        f"timed out after {timeout_s:.0f}s waiting for {what}; scheduler log tail:\n"
        + scheduler_log.read_text()[-5000:]
    )


@pytest.fixture(scope="module")
def airflow_run(servers, tmp_path_factory):
    """The DAG triggered once under `airflow scheduler` (LocalExecutor, PostgreSQL),
    ML Metadata on MariaDB: (config, task instances, dag run state)."""
    home = tmp_path_factory.mktemp("airflow_team")
    config = small_config(home / "pipeline", **mysql_settings(servers, "mlmd_airflow"))
    env = sourced_env("scripts/airflow_env.sh", {**servers, "AIRFLOW_HOME": str(home / "airflow")})
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    env.update(
        config.as_env(),
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        CFPB_AIRFLOW_COMPILED=str(home / "compiled.json"),
    )
    subprocess.run(
        ["airflow", "db", "migrate"],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )
    subprocess.run(
        [sys.executable, "runners/airflow_runner.py"],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )

    log = home / "scheduler.log"
    with open(log, "w") as out:
        # Its own process group: the LocalExecutor's workers and task processes
        # are stopped with it.
        scheduler = subprocess.Popen(
            ["airflow", "scheduler"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for(
            "the scheduler to parse the DAG",
            DAG_PARSE_TIMEOUT_S,
            lambda: _query(servers, "SELECT 1 FROM dag WHERE dag_id = %s", DAG_ID),
            log,
        )
        run_id = f"team-servers-{int(time.time())}"
        triggered = subprocess.run(
            ["airflow", "dags", "trigger", DAG_ID, "--run-id", run_id],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert triggered.returncode == 0, triggered.stderr[-3000:]
        state = _wait_for(
            "the DAG run to finish",
            DAG_RUN_TIMEOUT_S,
            lambda: next(
                (
                    s
                    for (s,) in _query(
                        servers,
                        "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s",
                        DAG_ID,
                        run_id,
                    )
                    if s in ("success", "failed")
                ),
                None,
            ),
            log,
        )
        tasks = {
            task_id: (task_state, start, end)
            for task_id, task_state, start, end in _query(
                servers,
                "SELECT task_id, state, start_date, end_date FROM task_instance "
                "WHERE dag_id = %s AND run_id = %s",
                DAG_ID,
                run_id,
            )
        }
        print({t: (s, str(b), str(e)) for t, (s, b, e) in tasks.items()})
    finally:
        os.killpg(scheduler.pid, signal.SIGTERM)
        try:
            scheduler.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(scheduler.pid, signal.SIGKILL)
    return config, tasks, state


def test_every_task_succeeded(airflow_run):
    config, tasks, state = airflow_run
    assert state == "success"
    assert {task: s for task, (s, _, _) in tasks.items()} == {
        task: "success"
        for task in {
            *pipeline.component_ids(pipeline.create_pipeline(config)),
            airflow_runner.PREPARE_TASK_ID,
        }
    }


def test_independent_components_ran_at_the_same_time(airflow_run):
    config, tasks, _ = airflow_run
    overlapping = [
        (a, b)
        for a, b in combinations(sorted(tasks), 2)
        if tasks[a][1] < tasks[b][2] and tasks[b][1] < tasks[a][2]
    ]
    assert overlapping, tasks
    # ...and never against the graph: no task started before an upstream one ended.
    for upstream, downstream in pipeline.component_edges(pipeline.create_pipeline(config)):
        assert tasks[upstream][2] <= tasks[downstream][1], (upstream, downstream)


def test_ml_metadata_on_mysql_holds_every_execution(airflow_run):
    config, _, _ = airflow_run
    assert config.uses_mysql
    assert set(EXECUTING_COMPONENTS) <= completed_component_types(config)
    assert not Path(config.metadata_path).exists()  # nothing went to SQLite


def test_a_model_was_pushed(airflow_run):
    config, _, _ = airflow_run
    versions = list((Path(config.serving_model_dir) / config.model_name).iterdir())
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()
    assert summary.run_summary(config).pushed_path == str(versions[0])


def test_the_run_report_reads_the_airflow_run_on_mysql(airflow_run, tmp_path):
    config, _, _ = airflow_run
    page = report.write(config, tmp_path).read_text()
    assert "Blessed and pushed as version" in page and 'class="bar"' in page


def test_a_second_process_is_served_from_the_shared_mysql_cache(servers, tmp_path):
    """Beam runner processes against one MySQL store: one started while the
    first runs is refused by the database's run lock; one started after it
    reuses the first one's outputs. (It re-validates, because the drift
    resolver now finds the first run's validation.)"""
    config = small_config(tmp_path, **mysql_settings(servers, "mlmd_beam"))
    env = {**servers, "CFPB_MYSQL_DATABASE": config.mysql_database}
    command = [sys.executable, "runners/beam_runner.py", *config.as_flags()]
    log = tmp_path / "first.log"  # a file: a pipe unread while the test waits would block it
    with open(log, "w") as out:
        first = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    started = time.monotonic()
    # It holds the lock from its first step; its pipeline root appears later.
    while not (Path(config.pipeline_root) / "CsvExampleGen").exists():
        assert first.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() - started < 600
        time.sleep(0.5)
    # As from another machine: its own pipeline root, the same database.
    elsewhere = dataclasses.replace(config, pipeline_root=str(tmp_path / "elsewhere"))
    at_once = subprocess.run(
        [sys.executable, "runners/beam_runner.py", *elsewhere.as_flags()],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert at_once.returncode == 3, at_once.stdout[-3000:] + at_once.stderr[-3000:]
    assert (
        f"another run of pipeline 'cfpb-disputes' is using MySQL database "
        f"{config.mysql_database} (connection " in at_once.stderr
    ), at_once.stderr
    assert first.wait(timeout=1800) == 0, log.read_text()[-3000:]
    result = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    assert "mysql://" in result.stdout  # the run summary names the store
    assert "  report      " in result.stdout and "not written" not in result.stdout
    second = summary.run_summary(config)
    states = {node_id: node.state for node_id, node in second.nodes.items()}
    for component in (
        "CsvExampleGen",
        "StatisticsGen",
        "ImportSchemaGen",
        "ExampleValidator",
        "Transform",
        "Trainer",
        "Evaluator",
        "Pusher",
    ):
        assert states[component] == "cached", states
    assert second.push_reused_version  # pushed nothing new
    assert len(list((Path(config.serving_model_dir) / config.model_name).iterdir())) == 1


_HOLD_THE_RUN_LOCK = """
import sys, time
from runners import run_lock
from settings.configs import PipelineConfig
with run_lock.exclusive_run(PipelineConfig.from_env()):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_mysql_run_lock_is_per_pipeline_and_dies_with_its_holder(servers, tmp_path):
    config = small_config(tmp_path, **mysql_settings(servers, "mlmd_lock"))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_THE_RUN_LOCK],
        env={**servers, **config.as_env()},
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(run_lock.RunLocked, match="is using MySQL database mlmd_lock"):
            with run_lock.exclusive_run(
                dataclasses.replace(config, pipeline_root=str(tmp_path / "b"))
            ):
                pass
        # Another pipeline on the same database is not held up.
        with run_lock.exclusive_run(
            dataclasses.replace(config, pipeline_name="other", pipeline_root=str(tmp_path / "o"))
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)  # as a killed run ends: no cleanup
        holder.wait()
    # The server drops the lock with the dead process's connection (it sees
    # the connection close when it next reads from it: at once, or nearly).
    deadline = time.monotonic() + 10
    while True:
        try:
            with run_lock.exclusive_run(
                dataclasses.replace(config, pipeline_root=str(tmp_path / "c"))
            ):
                break
        except run_lock.RunLocked:
            assert time.monotonic() < deadline, "the dead run's lock was never released"
            time.sleep(0.2)
