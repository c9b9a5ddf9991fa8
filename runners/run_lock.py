"""One local run at a time per ML Metadata store and pipeline root, and what a
killed run left behind.

Two Beam runs on one SQLite store would both write to it (SQLite answers one
of them "database is locked" mid-component), and two runs on one pipeline
root whose stores differ would reuse the same execution ids, so the same
output folders. The runner therefore holds an exclusive lock (flock) on the
SQLite file and on a local pipeline root for the whole run; a second run is
refused at once, naming the run that holds it. The kernel drops the lock when
its process ends, however it ends (SIGKILL included), so a killed run never
leaves a stale lock behind.

Airflow tasks on the same store (runners/airflow_runner.py) hold the same
locks shared, one task at a time each: tasks run side by side, and a Beam run
is refused while any of them runs, as a task is while a Beam run holds them
(Airflow retries it). An SQLite store lives on one machine, and so do these
locks: Airflow workers on other machines need a team store (MySQL, gRPC).

A run killed mid-component leaves that component's execution RUNNING in ML
Metadata forever (nothing else would ever finish it). Holding the lock
alone proves no other local run and no task is alive, so the next Beam run
marks such executions CANCELED with a note before it starts; TFX's cache only
reuses COMPLETE executions, so the killed component simply runs again.

On MySQL/MariaDB (a team store) the lock lives in the database, where every
machine's runs meet: a Beam run holds a named lock of the server
(GET_LOCK('cfpb-run:<database>:<pipeline>'), on its own connection) for the
whole run, and a second Beam run of the same pipeline on that database is
refused at once, naming the holder's connection. Other pipelines on the same
database proceed. The server drops the lock when the holder's connection
ends, however the process ends. Holding that lock proves no other Beam run
of the pipeline is alive, on any machine, so the run cancels what earlier
Beam runs of it left RUNNING; executions of other runs (an Airflow DAG run,
which takes no lock) may be live and are left alone.

Airflow tasks on MySQL take no lock (a DAG runs one run at a time,
`max_active_runs=1`); MLMD commits each write in a transaction and each
execution writes to its own output folder, so a Beam run beside an Airflow
run corrupts nothing, but both may run the same components. ML Metadata
behind gRPC (a cluster's metadata service) is not locked here.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from settings.configs import PipelineConfig, is_remote

LOCK_NAME = ".run.lock"
# TFX's BeamDagRunner names each run it starts '%Y%m%d-%H%M%S.%f'
# (tfx/orchestration/beam/beam_dag_runner.py, `run`); Airflow's run ids read
# 'manual__<time>', 'scheduled__<time>'.
BEAM_RUN_ID = re.compile(r"\d{8}-\d{6}\.\d{6}")
INTERRUPTED_KEY = "interrupted"


class RunLocked(RuntimeError):
    """Another run holds the store or the pipeline root."""


class StoreUnreachable(RuntimeError):
    """The MySQL store that holds the run lock cannot be reached."""


def locks_store(config: PipelineConfig) -> bool:
    """Whether the store is a local SQLite file, which this module locks."""
    return (
        not config.uses_mysql and not config.metadata_grpc and not is_remote(config.metadata_path)
    )


def lock_files(config: PipelineConfig) -> list[Path]:
    """What this run must hold alone: the SQLite store and a local pipeline root."""
    paths = []
    if locks_store(config):
        paths.append(Path(f"{config.metadata_path}.lock"))
    if not is_remote(config.pipeline_root):
        paths.append(Path(config.pipeline_root) / LOCK_NAME)
    return paths


def _holder() -> str:
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return f"pid {os.getpid()} on {os.uname().nodename}, started {started}: {' '.join(sys.argv)}"


@contextlib.contextmanager
def exclusive_run(config: PipelineConfig) -> Iterator[None]:
    """Holds every lock of `lock_files` alone for the duration (a Beam run),
    and the database's run lock on a MySQL store; raises RunLocked at once
    when another run or an Airflow task holds one."""
    with _holding(config, fcntl.LOCK_EX), _database_lock(config):
        yield


def database_lock_name(config: PipelineConfig) -> str:
    """The server-wide name of a pipeline's run lock on a MySQL store (MySQL
    takes names up to 64 characters: longer ones are hashed)."""
    name = f"cfpb-run:{config.mysql_database}:{config.pipeline_name}"
    return name if len(name) <= 64 else "cfpb-run:" + hashlib.sha256(name.encode()).hexdigest()[:48]


@contextlib.contextmanager
def _database_lock(config: PipelineConfig) -> Iterator[None]:
    if not config.uses_mysql:
        yield
        return
    import pymysql

    from settings import metadata

    name = database_lock_name(config)
    store = metadata.connection_config(config).mysql  # where ML Metadata connects
    try:
        connection = pymysql.connect(
            host=store.host,
            port=store.port,
            user=store.user,
            password=store.password,
            connect_timeout=10,
        )
    except pymysql.MySQLError as error:
        raise StoreUnreachable(
            f"cannot reach the MySQL store at {config.mysql_host}:{config.mysql_port} "
            f"(--mysql-host, --mysql-port): {error.args[-1]}"
        ) from None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (name,))
            if cursor.fetchone()[0] != 1:
                cursor.execute(
                    "SELECT p.ID, p.HOST, p.TIME FROM information_schema.PROCESSLIST p "
                    "WHERE p.ID = IS_USED_LOCK(%s)",
                    (name,),
                )
                row = cursor.fetchone()
                holder = f"connection {row[0]} from {row[1]}, {row[2]} s" if row else "a connection"
                raise RunLocked(
                    f"another run of pipeline {config.pipeline_name!r} is using MySQL database "
                    f"{config.mysql_database} ({holder}, lock {name}); wait for it to "
                    "finish or stop it, or give this run its own --pipeline-name or "
                    "--mysql-database"
                )
        yield
    finally:
        connection.close()  # the server releases the lock with the connection


@contextlib.contextmanager
def shared_task(config: PipelineConfig) -> Iterator[None]:
    """Holds every lock of `lock_files` shared with other tasks for the
    duration of one task (an Airflow task runs one node): tasks run side by
    side, a Beam run waits for none of them and is refused while one runs,
    and a task is refused while a Beam run holds the store (Airflow retries
    it). Holding the lock is what tells the next Beam run that a RUNNING
    execution is a live task's, not an interrupted one's."""
    with _holding(config, fcntl.LOCK_SH):
        yield


@contextlib.contextmanager
def _holding(config: PipelineConfig, mode: int) -> Iterator[None]:
    held: list[int] = []
    try:
        for path in lock_files(config):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _blocking_holder(fd)
                os.close(fd)
                locked = path.parent if path.name == LOCK_NAME else path.with_suffix("")
                raise RunLocked(
                    f"another run is using {locked} ({holder}); wait for it to finish or stop "
                    "it, or give this run its own --metadata-path and --pipeline-root"
                ) from None
            held.append(fd)
            if mode == fcntl.LOCK_EX:  # shared holders are many: only a run names itself
                os.ftruncate(fd, 0)
                os.write(fd, _holder().encode())
        yield
    finally:
        for fd in held:
            os.close(fd)  # closing the descriptor releases the flock


def _blocking_holder(fd: int) -> str:
    """Who holds the lock: a shared lock granted now means only tasks hold it
    (an exclusive holder would refuse it too), else the run named in the file."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.read(fd, 4096).decode(errors="replace").strip() or "unknown"
    fcntl.flock(fd, fcntl.LOCK_UN)
    return "Airflow tasks of this store are running"


def cancel_interrupted(
    store, pipeline_name: str, run_id: str | None = None, beam_runs_only: bool = False
) -> list[str]:
    """Marks the pipeline's executions left RUNNING (or NEW) as CANCELED, with
    a note; returns '<node> (run <id>)' for each. Without `run_id`, call only
    under the exclusive lock: on SQLite no task holds the shared one, so none
    of them is live; on MySQL (`beam_runs_only`) the database lock proves only
    that no Beam run of the pipeline is, so only Beam runs' are canceled. With
    `run_id`, only that run's: call from the process that ran it, once it
    failed (a node it could not record as failed, e.g. with ML Metadata out of
    reach at that moment)."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    from settings import metadata

    context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if context is None:
        return []
    stuck = [
        e
        for e in store.get_executions_by_context(context.id)
        if metadata.execution_state(e) in (pb.Execution.RUNNING, pb.Execution.NEW)
    ]
    if not stuck:
        return []
    contexts = {e.id: store.get_contexts_by_execution(e.id) for e in stuck}
    type_names = {t.id: t.name for t in store.get_context_types()}
    cancelled = []
    for execution in stuck:
        names = {type_names[c.type_id]: c.name for c in contexts[execution.id]}
        run = names.get("pipeline_run", "")
        if run_id is not None and run != run_id:
            continue
        if beam_runs_only and not BEAM_RUN_ID.fullmatch(run):
            continue
        node = names.get("node", "?").rsplit(".", 1)[-1]
        execution.last_known_state = pb.Execution.CANCELED
        execution.custom_properties[INTERRUPTED_KEY].string_value = (
            "its run ended before it finished (the process was killed?); canceled by the "
            "next run on this store"
            if run_id is None
            else "its run failed before it could record the outcome; canceled by that run"
        )
        store.put_executions([execution])
        cancelled.append(f"{node} (run {run or '?'})")
    return cancelled
