"""The Beam options every component's Beam work runs with, from the settings.

One place turns `--beam-runner` and its family (job endpoint, parallelism, SDK
boot program) into Beam's options; the graph carries them (TFX's
`beam_pipeline_args`), so the Beam runner, Airflow tasks and Kubeflow tasks
all run their Beam work where the settings say. `--beam-pipeline-args` comes
last: a user's option overrides a derived one.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from settings.configs import GraphSettings, flag

JOB_ENDPOINT_OPTION = "--job_endpoint"
# The settings that choose where the Beam work runs (scripts/flink.sh writes
# them to build/flink/env.sh).
ENGINE_SETTINGS = ("beam_runner", "beam_job_endpoint", "beam_parallelism", "beam_sdk_boot")

# Direct: no options at all. Beam's defaults are the in-memory DirectRunner,
# one worker; and TFX builds and stages an sdist of itself for remote workers
# whenever the options are non-empty (tfx/utils/dependency_utils.py), ~5 s in
# every Beam component for workers that are this very process.
_DIRECT: list[str] = []


_WORKER_IDLE_MS = 30_000


def _flink(config: GraphSettings) -> list[str]:
    return [
        "--runner=PortableRunner",
        f"{JOB_ENDPOINT_OPTION}={config.beam_job_endpoint}",
        f"--parallelism={config.beam_parallelism}",
        # Stage by stage, each stage's output materialised before the next
        # starts: Beam's advice for batch on Flink (pipelined exchanges can
        # deadlock on TFX's fan-out/fan-in shapes), and what makes a
        # TaskManager's failure one stage's failure.
        "--execution_mode_for_batch=BATCH_FORCED",
        # The TaskManagers start each Python SDK worker with Beam's boot
        # program (no Docker): it asks the runner for the pipeline options,
        # then runs the SDK harness in the workers' environment.
        "--environment_type=PROCESS",
        f"--environment_options=process_command={config.beam_sdk_boot}",
        # A TaskManager's workers outlive a stage (they import TensorFlow,
        # ~10 s) and stop after this long unused, so that a finished
        # component's workers free their memory for the next one's.
        f"--environment_cache_millis={_WORKER_IDLE_MS}",
        # The workers' environment has TFX and this project installed (the
        # venv scripts/flink.sh gives the TaskManagers; on a real cluster, the
        # workers' image). Naming it keeps TFX from staging an sdist of itself
        # that the boot program would pip-install into that environment at
        # every worker start (tfx/utils/dependency_utils.py). Beam reads this
        # option only for Docker environments.
        f"--sdk_container_image=process:{config.beam_sdk_boot}",
    ]


def engine_settings(config: GraphSettings) -> dict[str, object]:
    """`config`'s engine settings, to give another config the same engine."""
    return {name: getattr(config, name) for name in ENGINE_SETTINGS}


def pipeline_args(config: GraphSettings) -> list[str]:
    """The Beam options of every component's Beam work under `config`."""
    derived = _flink(config) if config.beam_runner == "flink" else _DIRECT
    return derived + list(config.beam_pipeline_args)


class EngineUnreachable(RuntimeError):
    """The Beam job server the options name does not answer."""


def job_endpoint(args: Sequence[str]) -> str | None:
    """The job server `args` submit to (the last --job_endpoint), if any."""
    endpoint = None
    for arg in args:
        if arg.startswith(JOB_ENDPOINT_OPTION + "="):
            endpoint = arg.split("=", 1)[1]
    return endpoint


def check_reachable(args: Sequence[str], timeout: float = 5.0) -> None:
    """Raises EngineUnreachable, one line naming the address and its setting,
    when the options submit to a job server that does not accept connections
    within `timeout` seconds (a stopped cluster): before a run starts, rather
    than as a gRPC traceback inside its first Beam component."""
    endpoint = job_endpoint(args)
    if endpoint is None:
        return
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise EngineUnreachable(
            f"Beam job server {endpoint} ({flag('beam_job_endpoint')}) does not answer: "
            f"{reason}. Start the cluster (scripts/flink.sh start) or run on "
            f"{flag('beam_runner')}=direct"
        ) from None
