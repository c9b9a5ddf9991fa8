"""The team-server stack on real servers (no mocks): MariaDB for ML Metadata,
PostgreSQL for Airflow, Redis as the Celery broker, the local object store
for every location of the pipeline.

The `servers` fixture (tests/conftest.py) starts the three servers with
`scripts/dev_services.sh`. The DAG is triggered under a real scheduler with
the CeleryExecutor, and its tasks run on two Celery workers started with
`scripts/airflow_worker.sh`, each in a folder of its own: as on machines of
their own, they share only the servers and the bucket. The broker is
restarted while Transform runs.
"""

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from bench import faults
from data import prepare
from pipeline import pipeline
from pipeline.node_ids import EXAMPLE_GEN
from reporting import run_history, summary
from runners import airflow_runner, beam_runner, run_lock
from settings import metadata
from tests.conftest import (
    EXECUTING_COMPONENTS,
    completed_component_types,
    mysql_settings,
    plant_running,
    small_config,
    sourced_env,
)
from tests.runners import loopback

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]
DAG_ID = "cfpb-disputes"
BUCKET = "cfpb"
WORKERS = ("worker-a", "worker-b")
# What a worker's folder may hold: Airflow's own files, the deployed DAG, task logs.
WORKER_FILES = {"airflow.cfg", "webserver_config.py", "dags", "logs"}
# Bounded waits: a scheduler that never parses the DAG or a run that hangs
# fails the test instead of CI's overall time limit.
DAG_PARSE_TIMEOUT_S = 15 * 60
DAG_RUN_TIMEOUT_S = 45 * 60
# The broker is restarted while this task runs (a cell of docs/faults.md).
BROKER_RESTART_TASK = "Transform"


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


def _wait_for(what: str, timeout_s: float, check, logs: list[Path]):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(5)
    pytest.fail(
        f"timed out after {timeout_s:.0f}s waiting for {what}; log tails:\n"
        + "\n".join(f"--- {log}\n{log.read_text()[-3000:]}" for log in logs)
    )


def _start(command: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        # Its own process group: Celery's and the scheduler's children are
        # stopped with it.
        return subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclasses.dataclass
class CeleryRun:
    config: object  # PipelineConfig
    env: dict  # the scheduler's environment (servers, object store, settings)
    run_id: str
    state: str
    tasks: dict  # task id -> (state, start, end)
    workers: dict  # worker name -> its folder
    bucket_folder: Path  # where the local object store keeps the bucket's objects
    broker_restarted: str  # what BROKER_RESTART_TASK was doing when the broker went down

    def ran_on(self, task_id: str) -> list[str]:
        """The workers whose folder holds the task's log: where it ran."""
        return [
            name
            for name, folder in self.workers.items()
            if (
                folder
                / "logs"
                / f"dag_id={DAG_ID}"
                / f"run_id={self.run_id}"
                / f"task_id={task_id}"
            ).is_dir()
        ]


@pytest.fixture(scope="module")
def celery_run(servers, tmp_path_factory):
    """The DAG triggered once under `airflow scheduler` with the CeleryExecutor,
    run by two Celery workers; data, pipeline root, serving directory and
    reports in the bucket, ML Metadata on MariaDB. The object store stays up
    for the module's tests."""
    home = tmp_path_factory.mktemp("celery")
    with loopback.object_store(home / "object_store", BUCKET) as store:
        prefix = f"gs://{BUCKET}/team"
        config = small_config(
            home / "scheduler",
            data_root=f"{prefix}/spans",
            pipeline_root=f"{prefix}/pipeline_root",
            serving_model_dir=f"{prefix}/serving_model",
            report_dir=f"{prefix}/reports",
            **mysql_settings(servers, "mlmd_celery"),
        )
        env = sourced_env(
            "scripts/airflow_env.sh",
            {**servers, **store, "AIRFLOW_HOME": str(home / "scheduler" / "airflow")},
        )
        env.update(
            config.as_env(),
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            CFPB_AIRFLOW_COMPILED=str(home / "scheduler" / "compiled.json"),
        )
        # The README's steps: Airflow's tables, the compile, the spans into the bucket.
        for step in (
            ["airflow", "db", "migrate"],
            [sys.executable, "runners/airflow_runner.py"],
            [sys.executable, "-m", "data.prepare"],
        ):
            done = subprocess.run(
                step, env=env, cwd=REPO, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, (step, done.stdout[-3000:], done.stderr[-3000:])

        workers = {name: home / name for name in WORKERS}
        logs = [home / "scheduler.log", *(home / f"{name}.log" for name in WORKERS)]
        processes = [_start(["airflow", "scheduler"], env, REPO, logs[0])]
        try:
            for (name, folder), log in zip(workers.items(), logs[1:], strict=True):
                processes.append(
                    _start(
                        ["scripts/airflow_worker.sh", "start", str(folder), name], env, REPO, log
                    )
                )
            _wait_for(
                "the scheduler to parse the DAG",
                DAG_PARSE_TIMEOUT_S,
                lambda: _query(servers, "SELECT 1 FROM dag WHERE dag_id = %s", DAG_ID),
                logs,
            )
            run_id = f"celery-{int(time.time())}"
            triggered = subprocess.run(
                ["airflow", "dags", "trigger", DAG_ID, "--run-id", run_id],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert triggered.returncode == 0, triggered.stderr[-3000:]
            broker_restarted = _wait_for(
                f"{BROKER_RESTART_TASK} to start",
                DAG_RUN_TIMEOUT_S,
                lambda: next(
                    (
                        s
                        for (s,) in _query(
                            servers,
                            "SELECT state FROM task_instance "
                            "WHERE dag_id = %s AND run_id = %s AND task_id = %s",
                            DAG_ID,
                            run_id,
                            BROKER_RESTART_TASK,
                        )
                        if s not in (None, "scheduled", "queued")
                    ),
                    None,
                ),
                logs,
            )
            if broker_restarted == "running":
                faults.restart_broker(servers)
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
                logs,
            )
        finally:
            for process in processes:
                _stop(process)
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
        yield CeleryRun(
            config,
            env,
            run_id,
            state,
            tasks,
            workers,
            home / "object_store" / "data" / BUCKET,
            broker_restarted,
        )


def test_every_task_succeeded(celery_run):
    assert celery_run.state == "success"
    assert {task: s for task, (s, _, _) in celery_run.tasks.items()} == {
        task: "success"
        for task in pipeline.component_ids(pipeline.create_pipeline(celery_run.config))
    }
    # Spans in a bucket are prepared before the run (`python -m data.prepare`):
    # the DAG has no prepare_spans task.
    assert airflow_runner.PREPARE_TASK_ID not in celery_run.tasks


def test_a_broker_restart_mid_run_loses_no_task(celery_run):
    # Redis went down for a few seconds while Transform ran on a worker and
    # later tasks were still to be queued; test_every_task_succeeded holds
    # for this very run.
    assert celery_run.broker_restarted == "running"
    assert celery_run.state == "success"


def test_independent_components_ran_at_the_same_time(celery_run):
    tasks = celery_run.tasks
    overlapping = [
        (a, b)
        for a, b in combinations(sorted(tasks), 2)
        if tasks[a][1] < tasks[b][2] and tasks[b][1] < tasks[a][2]
    ]
    assert overlapping, tasks
    # ...and never against the graph: no task started before an upstream one ended.
    for upstream, downstream in pipeline.component_edges(
        pipeline.create_pipeline(celery_run.config)
    ):
        assert tasks[upstream][2] <= tasks[downstream][1], (upstream, downstream)


def test_both_workers_ran_tasks_each_in_its_own_folder(celery_run):
    ran_on = {task: celery_run.ran_on(task) for task in celery_run.tasks}
    assert all(len(workers) == 1 for workers in ran_on.values()), ran_on
    assert {workers[0] for workers in ran_on.values()} == set(WORKERS), ran_on
    for folder in celery_run.workers.values():
        # Nothing of the pipeline on a worker's disk: only Airflow's files.
        assert {p.name for p in folder.iterdir()} <= WORKER_FILES, folder


def test_every_artifact_is_in_the_bucket(celery_run):
    from ml_metadata import metadata_store

    config = celery_run.config
    store = metadata_store.MetadataStore(metadata.connection_config(config))
    uris = [a.uri for a in store.get_artifacts()]
    assert uris and all(u.startswith(f"gs://{BUCKET}/team/") for u in uris), uris
    assert set(EXECUTING_COMPONENTS) <= completed_component_types(config)
    assert not Path(config.metadata_path).exists()  # nothing went to SQLite
    versions = list(
        (celery_run.bucket_folder / "team" / "serving_model" / config.model_name).iterdir()
    )
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()


def test_the_summary_and_the_report_read_the_celery_run(celery_run):
    """The users' commands, with the scheduler's environment."""
    printed = subprocess.run(
        [sys.executable, "-m", "reporting.summary", "--run-id", celery_run.run_id],
        env=celery_run.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert printed.returncode == 0, printed.stderr[-3000:]
    assert f"pushed      gs://{BUCKET}/team/serving_model/" in printed.stdout, printed.stdout
    page = subprocess.run(
        [sys.executable, "-m", "reporting.report", "--run-id", celery_run.run_id],
        env=celery_run.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert page.returncode == 0, page.stderr[-3000:]
    written = celery_run.bucket_folder / "team" / "reports" / DAG_ID / f"{celery_run.run_id}.html"
    assert "Blessed and pushed as version" in written.read_text()


@pytest.fixture(scope="module")
def beam_runs(servers, tmp_path_factory):
    """Beam runner processes against one MySQL store, on the Celery run's data
    and settings with local folders: a first run; one started while it runs,
    as from another machine (its own pipeline root, the same database); one
    started after it. (config, what each printed: first, at once, after)."""
    root = tmp_path_factory.mktemp("beam_on_mysql")
    config = small_config(root, **mysql_settings(servers, "mlmd_beam"))
    env = {**servers, "CFPB_MYSQL_DATABASE": config.mysql_database}
    command = [sys.executable, "runners/beam_runner.py", *config.as_flags()]
    log = root / "first.log"  # a file: a pipe unread while the test waits would block it
    with open(log, "w") as out:
        first = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    started = time.monotonic()
    # It holds the lock from its first step; its pipeline root appears later.
    while not (Path(config.pipeline_root) / "CsvExampleGen").exists():
        assert first.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() - started < 600
        time.sleep(0.5)
    elsewhere = dataclasses.replace(config, pipeline_root=str(root / "elsewhere"))
    at_once = subprocess.run(
        [sys.executable, "runners/beam_runner.py", *elsewhere.as_flags()],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.wait(timeout=1800) == 0, log.read_text()[-3000:]
    after = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert after.returncode == 0, after.stdout[-3000:] + after.stderr[-3000:]
    return config, log.read_text(), at_once, after


def test_the_celery_run_decides_what_the_beam_runner_decides(celery_run, beam_runs):
    """Same data, same settings: the DAG on two Celery workers over the bucket
    and the Beam runner on local folders read, train, bless and push alike.
    (The history reads the bucket: the users' command, in the run's environment.)"""
    beam_config = beam_runs[0]
    beam = run_history.history(metadata.connection_config(beam_config), beam_config.pipeline_name)
    printed = subprocess.run(
        [sys.executable, "-m", "reporting.run_history"],
        env=celery_run.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert printed.returncode == 0, printed.stderr[-3000:]
    print("\nBeam runner:\n" + run_history.markdown(beam))
    print("\nAirflow on Celery workers:\n" + printed.stdout)

    # Header, separator, one row per run: the Celery store holds one run.
    # Versions are named by the time of their push: the same place, another name.
    def by_place(text: str) -> list[str]:
        return re.sub(r"version \d+", "version <pushed>", text).splitlines()

    assert by_place(printed.stdout) == by_place(run_history.markdown(beam[:1]))
    assert beam[0].blessed and (beam[0].push, beam[0].version_number) == (run_history.NEW, 1)


def test_a_second_beam_run_on_the_database_is_refused_while_one_runs(beam_runs):
    config, _, at_once, _ = beam_runs
    assert at_once.returncode == 3, at_once.stdout[-3000:] + at_once.stderr[-3000:]
    assert (
        f"another run of pipeline 'cfpb-disputes' is using MySQL database "
        f"{config.mysql_database} (connection " in at_once.stderr
    ), at_once.stderr


def test_a_later_run_is_served_from_the_shared_mysql_cache(beam_runs):
    """(It re-validates, because the drift resolver now finds the first run's
    validation.)"""
    config, _, _, result = beam_runs
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

    def run_lock_is_free() -> bool:
        with run_lock.exclusive_run(dataclasses.replace(config, pipeline_root=str(tmp_path / "c"))):
            return True

    _until_freed(run_lock_is_free)


def _task_call(run_id: str) -> list[str]:
    """One attempt of the Airflow task that runs CsvExampleGen in `run_id`:
    the task's callable in a process of its own, as a worker runs it."""
    call = f"from runners.airflow_runner import run_node; run_node({EXAMPLE_GEN!r}, {run_id!r})"
    return [sys.executable, "-c", call]


def _frozen_in_node(task: subprocess.Popen, config, run_id: str, log: Path) -> None:
    """Stops (SIGSTOP) the task's processes once ML Metadata holds its
    execution RUNNING: alive, holding its lock and connection, and working
    no further, as a worker Airflow lost touch with. Deterministic where
    racing a node of a few seconds was not."""

    def running():
        return [e for e in _in_run(config, run_id) if e.last_known_state == pb.Execution.RUNNING]

    deadline = time.monotonic() + 300
    while not running():  # polled often: the node runs for a few seconds
        assert time.monotonic() < deadline, (
            f"{EXAMPLE_GEN} never RUNNING in {run_id}:\n" + (log.read_text()[-3000:])
        )
        time.sleep(0.05)
    os.killpg(task.pid, signal.SIGSTOP)
    assert running(), f"{EXAMPLE_GEN} of {run_id} finished before it was stopped"


def _contexts(config, execution) -> list:
    from ml_metadata import metadata_store

    return metadata_store.MetadataStore(
        metadata.connection_config(config)
    ).get_contexts_by_execution(execution.id)


def _until_freed(attempt, deadline_s: float = 10):
    """`attempt()` again while a dead holder's lock is still held: the
    server drops a named lock with the dead process's connection, when it
    notices the connection closed (at once, or nearly)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            result = attempt()
            if result:
                return result
        except run_lock.RunLocked:
            pass
        assert time.monotonic() < deadline, "the dead holder's lock was never released"
        time.sleep(0.2)


def test_a_killed_airflow_task_is_retried_in_its_execution_and_never_canceled_alive(
    servers, tmp_path
):
    config = small_config(
        tmp_path,
        airflow_compiled=str(tmp_path / "compiled.json"),
        **mysql_settings(servers, "mlmd_task_attempts"),
    )
    prepare.prepare_configured(config, check=())
    airflow_runner.compile_pipeline(config)
    env = {**faults.without_settings(servers), **config.as_env()}
    connection = metadata.connection_config(config)
    live, retried, later = (f"manual__2026-12-05T0{h}:00:00+00:00" for h in (7, 8, 9))
    # The Beam run comes from another machine: its own pipeline root, the
    # same database (the tasks' local pipeline root is locked by its files).
    beam_machine = dataclasses.replace(config, pipeline_root=str(tmp_path / "beam_machine"))

    def next_beam_run_cancels() -> list[str]:
        with run_lock.exclusive_run(beam_machine):
            return beam_runner.cancel_left_running(beam_machine, connection)

    def attempt(run_id: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            _task_call(run_id),
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )

    log = tmp_path / "live.log"
    task = _start(_task_call(live), env, REPO, log)
    try:
        _frozen_in_node(task, config, live, log)
        # What a killed Beam run left, and a run under an id given by hand.
        from ml_metadata import metadata_store

        beam_run, by_hand = "20261205-065900.123456", "my-run-by-hand"
        plant_running(
            metadata_store.MetadataStore(connection),
            config.pipeline_name,
            "Transform",
            (beam_run, by_hand),
        )
        # The database's run lock proves earlier Beam runs dead; a live task's
        # execution is never canceled, nor one under a run id Airflow did not
        # make; and a second attempt of the live task (a worker Airflow lost
        # touch with) does not run the node.
        assert next_beam_run_cancels() == [f"Transform (run {beam_run})"]
        twin = attempt(live)
        assert twin.returncode != 0
        assert f"another attempt of task {EXAMPLE_GEN} of run {live} is still running" in (
            twin.stderr
        )
    finally:
        os.killpg(task.pid, signal.SIGKILL)  # the lost worker ends: no cleanup
        task.wait()
    # Dead now, from any machine's view: the next Beam run on the database cancels it.
    assert _until_freed(next_beam_run_cancels) == [f"{EXAMPLE_GEN} (run {live})"]

    # Killed, then a task of a later run starts before the retry: it cancels
    # the dead execution; the retry then finishes that same execution (TFX's
    # launcher reuses a run's execution of the node).
    log = tmp_path / "killed.log"
    task = _start(_task_call(retried), env, REPO, log)
    _frozen_in_node(task, config, retried, log)
    killed = _in_run(config, retried)
    os.killpg(task.pid, signal.SIGKILL)
    task.wait()

    def task_lock_is_free() -> bool:
        with run_lock.task_attempt(config, retried, EXAMPLE_GEN):
            return True

    _until_freed(task_lock_is_free)
    later_task = attempt(later)
    assert later_task.returncode == 0, later_task.stdout + later_task.stderr
    assert (
        f"Marked as canceled, left running by a killed task: {EXAMPLE_GEN} (run {retried})"
        in later_task.stdout
    )
    assert [e.last_known_state for e in _in_run(config, retried)] == [pb.Execution.CANCELED]
    retry = attempt(retried)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    (finished,) = _in_run(config, retried)
    assert finished.id == killed[0].id
    assert finished.last_known_state in (pb.Execution.COMPLETE, pb.Execution.CACHED)
    left = [e for e in faults.executions(config) if e.last_known_state == pb.Execution.RUNNING]
    assert [[c.name for c in _contexts(config, e) if c.name == by_hand] for e in left] == [
        [by_hand]
    ]  # only the hand-given run's, which only its own run may judge


def _in_run(config, run_id: str) -> list:
    return [
        e
        for e in faults.executions(config, EXAMPLE_GEN)
        if run_id in {c.name for c in _contexts(config, e)}
    ]
