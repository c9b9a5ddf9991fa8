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

A run killed mid-component leaves that component's execution RUNNING in ML
Metadata forever (nothing else would ever finish it). Holding the lock
proves no other local run is alive, so the next run marks such executions
CANCELED with a note before it starts; TFX's cache only reuses COMPLETE
executions, so the killed component simply runs again.

ML Metadata on MySQL or behind gRPC (a team or cluster store) is not locked
here: MLMD commits each write in a transaction, and each execution writes to
its own output folder, so two runs there corrupt nothing, but both may run
the same components and each may push a model.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from settings.configs import PipelineConfig, is_remote

LOCK_NAME = ".run.lock"
INTERRUPTED_KEY = "interrupted"


class RunLocked(RuntimeError):
    """Another run holds the store or the pipeline root."""


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
    """Holds every lock of `lock_files` for the duration; raises RunLocked at
    once when another run holds one."""
    held: list[int] = []
    try:
        for path in lock_files(config):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 4096).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                locked = path.parent if path.name == LOCK_NAME else path.with_suffix("")
                raise RunLocked(
                    f"another run is using {locked} ({holder}); wait for it to finish or stop "
                    "it, or give this run its own --metadata-path and --pipeline-root"
                ) from None
            held.append(fd)
            os.ftruncate(fd, 0)
            os.write(fd, _holder().encode())
        yield
    finally:
        for fd in held:
            os.close(fd)  # closing the descriptor releases the flock


def cancel_interrupted(store, pipeline_name: str) -> list[str]:
    """Marks the pipeline's executions left RUNNING (or NEW) as CANCELED, with
    a note; returns '<node> (run <id>)' for each. Call only under the lock."""
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
        node = names.get("node", "?").rsplit(".", 1)[-1]
        execution.last_known_state = pb.Execution.CANCELED
        execution.custom_properties[INTERRUPTED_KEY].string_value = (
            "its run ended before it finished (the process was killed?); canceled by the "
            "next run on this store"
        )
        store.put_executions([execution])
        cancelled.append(f"{node} (run {names.get('pipeline_run', '?')})")
    return cancelled
