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
Beam runs of it left RUNNING.

Every Airflow task attempt also holds a lock of its own (run, node) for as
long as it runs its node (`task_attempt`): a named lock of the server on
MySQL, a byte of `<store>.tasks.lock` (fcntl) on SQLite. It is taken before
TFX registers the node's execution and dropped, however the process ends,
after the execution is final. A second live attempt of one task (a worker
Airflow lost touch with, still running) is refused rather than run the node
into the same execution and output folders. A retry after a killed attempt
needs nothing more: TFX's launcher reuses the execution the run already has
for the node (`_register_or_reuse_execution`, tfx/orchestration/portable/
launcher.py) and finishes it. What stays RUNNING is a killed attempt that is
never retried; on MySQL a free task lock proves it dead from any machine, so
the next Beam run cancels it, and so does the next task of a later Airflow
run. A live task's execution is never canceled. ML Metadata behind gRPC (a
cluster's metadata service) is not locked here.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from settings.configs import PipelineConfig, is_remote

LOCK_NAME = ".run.lock"
# TFX's BeamDagRunner names each run it starts '%Y%m%d-%H%M%S.%f'
# (tfx/orchestration/beam/beam_dag_runner.py, `run`); Airflow's run ids read
# 'manual__<time>', 'scheduled__<time>'.
BEAM_RUN_ID = re.compile(r"\d{8}-\d{6}\.\d{6}")
# Airflow names the runs it makes '<run type>__<logical date>' (DagRunType's
# generate_run_id, airflow/utils/types.py, 2.11); a run id given by hand may
# have any form, and its executions are never judged by their task locks.
AIRFLOW_RUN_ID = re.compile(r"(backfill|scheduled|manual|dataset_triggered)__.+")
TASK_LOCKS_SUFFIX = ".tasks.lock"
INTERRUPTED_KEY = "interrupted"
KILLED_RUN_NOTE = (
    "the process running it ended before it finished (killed?); canceled by the next run "
    "on this store"
)
FAILED_RUN_NOTE = "its run failed before it could record the outcome; canceled by that run"
DEAD_TASK_NOTE = (
    "the Airflow task running it ended before it finished (the process was killed?) "
    "and was not retried; canceled by a task of a later run"
)

# (pipeline run id, node id) -> whether no live process can still finish the
# node's execution in that run.
IsDead = Callable[[str, str], bool]


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
    """The server-wide name of a pipeline's run lock on a MySQL store."""
    return _server_lock_name("cfpb-run", f"{config.mysql_database}:{config.pipeline_name}")


def task_lock_name(config: PipelineConfig, run_id: str, node_id: str) -> str:
    """The server-wide name of one Airflow task's lock on a MySQL store."""
    key = f"{config.mysql_database}:{config.pipeline_name}:{run_id}:{node_id}"
    return _server_lock_name("cfpb-task", key)


def _server_lock_name(kind: str, key: str) -> str:
    # MySQL takes lock names up to 64 characters: longer ones are hashed.
    name = f"{kind}:{key}"
    return name if len(name) <= 64 else f"{kind}:" + hashlib.sha256(name.encode()).hexdigest()[:48]


@contextlib.contextmanager
def _database_lock(config: PipelineConfig) -> Iterator[None]:
    if not config.uses_mysql:
        yield
        return
    name = database_lock_name(config)
    with _server_connection(config) as connection:
        if not _get_server_lock(connection, name):
            raise RunLocked(
                f"another run of pipeline {config.pipeline_name!r} is using MySQL database "
                f"{config.mysql_database} ({_server_lock_holder(connection, name)}, lock "
                f"{name}); wait for it to finish or stop it, or give this run its own "
                "--pipeline-name or --mysql-database"
            )
        yield


@contextlib.contextmanager
def _server_connection(config: PipelineConfig):
    """A connection of its own to the MySQL server ML Metadata uses; the
    server releases its named locks when it closes, however the process ends."""
    import pymysql

    from settings import metadata

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
        yield connection
    finally:
        connection.close()


def _get_server_lock(connection, name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 0)", (name,))
        return cursor.fetchone()[0] == 1


def _server_lock_is_free(connection, name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT IS_FREE_LOCK(%s)", (name,))
        return cursor.fetchone()[0] == 1


def _server_lock_holder(connection, name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.ID, p.HOST, p.TIME FROM information_schema.PROCESSLIST p "
            "WHERE p.ID = IS_USED_LOCK(%s)",
            (name,),
        )
        row = cursor.fetchone()
    return f"connection {row[0]} from {row[1]}, {row[2]} s" if row else "a connection"


@contextlib.contextmanager
def task_attempt(config: PipelineConfig, run_id: str, node_id: str) -> Iterator[None]:
    """Holds the lock of the Airflow task that runs `node_id` in `run_id` for
    one attempt; raises RunLocked when another attempt of the task still runs."""
    if config.uses_mysql:
        name = task_lock_name(config, run_id, node_id)
        with _server_connection(config) as connection:
            if not _get_server_lock(connection, name):
                raise RunLocked(
                    f"another attempt of task {node_id} of run {run_id} is still running "
                    f"({_server_lock_holder(connection, name)}, lock {name})"
                )
            yield
    elif locks_store(config):
        path = Path(f"{config.metadata_path}{TASK_LOCKS_SUFFIX}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # One byte of one file per task: POSIX record locks, which the
            # kernel drops with the process. No file per task to clean up.
            try:
                fcntl.lockf(
                    fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _task_byte(config, run_id, node_id)
                )
            except OSError:
                raise RunLocked(
                    f"another attempt of task {node_id} of run {run_id} is still running "
                    f"on this machine (lock {path})"
                ) from None
            yield
        finally:
            os.close(fd)
    else:  # gRPC: nothing to lock here
        yield


def _task_byte(config: PipelineConfig, run_id: str, node_id: str) -> int:
    key = f"{config.pipeline_name}:{run_id}:{node_id}".encode()
    return int(hashlib.sha256(key).hexdigest()[:15], 16)  # 60 bits: collisions are negligible


@contextlib.contextmanager
def left_by_the_dead(
    config: PipelineConfig, task_of_run: str | None = None
) -> Iterator[IsDead | None]:
    """Yields the test that tells which runs' and nodes' unfinished
    executions no live process can finish, or None when nothing can be told
    (then nothing is read). For a Beam run (under `exclusive_run`): on SQLite
    every one (no run and no task is alive); on MySQL earlier Beam runs'
    (the database's run lock) and Airflow runs' whose task lock is free. For
    a task of Airflow run `task_of_run`, on MySQL: other Airflow runs' whose
    task lock is free (its own run's are Airflow's to retry: TFX's launcher
    reuses the node's execution)."""
    if task_of_run is None and locks_store(config):
        yield lambda run, node: True
    elif config.uses_mysql:
        with _server_connection(config) as connection:

            def is_dead(run: str, node: str) -> bool:
                if BEAM_RUN_ID.fullmatch(run):
                    return task_of_run is None
                return (
                    run != task_of_run
                    and bool(AIRFLOW_RUN_ID.fullmatch(run))
                    and _server_lock_is_free(connection, task_lock_name(config, run, node))
                )

            yield is_dead
    else:
        yield None


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


def cancel_interrupted(store, pipeline_name: str, is_dead: IsDead, note: str) -> list[str]:
    """Marks the pipeline's executions left RUNNING (or NEW) whose run and
    node `is_dead` tells dead as CANCELED, with `note`; returns '<node> (run
    <id>)' for each. `is_dead` comes from what the caller holds
    (`left_by_the_dead`), or is a failed run naming itself (a node it could
    not record as failed, e.g. with ML Metadata out of reach at that moment)."""
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
    type_names = {t.id: t.name for t in store.get_context_types()}
    cancelled = []
    for execution in stuck:
        names = {
            type_names[c.type_id]: c.name for c in store.get_contexts_by_execution(execution.id)
        }
        run = names.get("pipeline_run", "")
        node = names.get("node", "?").rsplit(".", 1)[-1]
        if not is_dead(run, node):
            continue
        execution.last_known_state = pb.Execution.CANCELED
        execution.custom_properties[INTERRUPTED_KEY].string_value = note
        store.put_executions([execution])
        cancelled.append(f"{node} (run {run or '?'})")
    return cancelled


def cancel_in(
    connection_config, pipeline_name: str, is_dead: IsDead | None, note: str
) -> list[str]:
    """`cancel_interrupted` on the store `connection_config` names, opened as
    every TFX component opens it: runs starting at once on an empty MySQL
    database race to create ML Metadata's tables ("concurrent connection to
    the empty database. Please retry"), and TFX retries. With no `is_dead`
    (`left_by_the_dead` can tell nothing) the store is not opened."""
    if is_dead is None:
        return []
    from tfx.orchestration import metadata as tfx_metadata

    with tfx_metadata.Metadata(connection_config) as store:
        return cancel_interrupted(store.store, pipeline_name, is_dead, note)
