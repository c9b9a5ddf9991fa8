"""BeamDagRunner that prints one line per component instead of TFX's INFO logs.

Lives in its own importable module because Beam pickles the node DoFn class by
reference; a class defined inside `__main__` or a function cannot be pickled.

The contract with TFX (1.16), which has no public hook for this: BeamDagRunner
builds each node's DoFn from its class attribute `_PIPELINE_NODE_DO_FN_CLS`
with PipelineNodeAsDoFn's documented keyword arguments. The subclass keeps its
own copies of the arguments it needs instead of reading TFX's private
attributes; tests/runners/test_beam_progress.py fails, saying this, when a TFX
upgrade changes either side.

The run id: `run_with_ir` writes the id it makes into the IR's runtime spec
before any node runs (runtime_parameter_utils.substitute_runtime_parameter
sets `runtime_spec.pipeline_run_id`), and every node's DoFn receives that
spec, so both the progress lines and the runner read the run they are in,
never "the newest run" of a store other runs may write to.
"""

from __future__ import annotations

import errno
import os
import re
import time
import traceback

from tfx.orchestration.beam import beam_dag_runner

from components import validation_gate
from reporting import queries

# Failures a user acts on from the message alone: no traceback for these.
EXPECTED_FAILURES = (validation_gate.DataValidationError,)

# What a full disk says: OSError's ENOSPC and TF's file errors (which are not
# OSErrors) both carry the C library's text for it.
NO_SPACE = os.strerror(errno.ENOSPC)
# ML Metadata's server down or out of reach: what TFX raises when it cannot
# open the store after its retries (tfx/orchestration/metadata.py), and the
# MySQL client's texts that ML Metadata relays when the server goes away
# mid-call (client errors 2002, 2003, 2006 and 2013; seen when MariaDB
# restarted while ExampleGen queried it).
MLMD_UNREACHABLE = (
    "Failed to establish connection to Metadata storage",
    "Can't connect to local MySQL server",
    "Can't connect to MySQL server",
    "MySQL server has gone away",
    "Lost connection to MySQL server",
)
# The object store out of reach after the clients' retries: TF's GCS
# filesystem gives up after 10 tries, ~3 min ("All 10 retry attempts
# failed", libcurl's connect, resolve and timeout errors; seen with the store
# down 5 minutes during the Trainer: bench.faults objectstore-outage), and
# google-cloud-storage's transport (urllib3) when it cannot connect.
OBJECT_STORE_UNREACHABLE = (
    "libcurl code 7 ",
    "libcurl code 6 ",
    "libcurl code 28 ",
    "Failed to establish a new connection",
)
# After a fault of the machine, what holds and what to do.
RUN_AGAIN = (
    "Fix that and run again: the components that finished are reused from cache, "
    "and the served model is unchanged."
)

# Nodes that failed in this process, their error already printed on their
# line: the runner names them instead of repeating Beam's wrapped error.
FAILED_NODES: list[str] = []


class ProgressNodeDoFn(beam_dag_runner.PipelineNodeAsDoFn):
    """Runs one node exactly as TFX does, printing when it starts and ends."""

    def __init__(
        self,
        *,
        pipeline_node,
        mlmd_connection_config,
        pipeline_info,
        pipeline_runtime_spec,
        **kwargs,
    ):
        super().__init__(
            pipeline_node=pipeline_node,
            mlmd_connection_config=mlmd_connection_config,
            pipeline_info=pipeline_info,
            pipeline_runtime_spec=pipeline_runtime_spec,
            **kwargs,
        )
        self.node_id = pipeline_node.node_info.id
        self.connection_config = mlmd_connection_config
        self.pipeline_id = pipeline_info.id
        self.run_id = run_id_of(pipeline_runtime_spec)

    def process(self, element, *signals):
        print(f"  > {self.node_id} ...", flush=True)
        started = time.monotonic()
        try:
            super().process(element, *signals)
        except Exception as error:
            took = f"{time.monotonic() - started:.1f}s"
            fault = machine_fault(error)
            if fault:
                print(f"  x {self.node_id} failed after {took}: {fault}. {RUN_AGAIN}", flush=True)
            else:
                print(
                    f"  x {self.node_id} failed after {took}: {type(error).__name__}: {error}",
                    flush=True,
                )
                if not isinstance(error, EXPECTED_FAILURES):
                    print(traceback.format_exc(), flush=True)
            FAILED_NODES.append(self.node_id)
            raise
        state = queries.node_state(
            self.connection_config, self.pipeline_id, self.run_id, self.node_id
        )
        print(f"  = {self.node_id} {state} in {time.monotonic() - started:.1f}s", flush=True)


def machine_fault(error: BaseException) -> str | None:
    """What failed outside the pipeline, for a fault of the machine or its
    servers that the message alone lets a user fix (no traceback): a full
    disk, ML Metadata or the object store out of reach. None for anything else."""
    written = full_disk_file(error)
    if written is not None:
        return NO_SPACE + (f" writing {written}" if written else "")
    seen: BaseException | None = error
    while seen is not None:
        text = str(seen)
        if any(phrase in text for phrase in MLMD_UNREACHABLE):
            return f"ML Metadata cannot be reached ({text.splitlines()[0]})"
        if any(phrase in text for phrase in OBJECT_STORE_UNREACHABLE):
            where = re.search(r"gs://\S+", text)
            return f"the object store cannot be reached ({text.splitlines()[0]})" + (
                f" using {where.group(0)}" if where else ""
            )
        seen = seen.__cause__ or seen.__context__
    return None


def full_disk_file(error: BaseException) -> str | None:
    """The file a full disk refused to write, when `error` or an error that
    caused it is a full disk ("" when it names none); None otherwise."""
    seen: BaseException | None = error
    while seen is not None:
        if getattr(seen, "errno", None) == errno.ENOSPC:
            return str(getattr(seen, "filename", None) or "")
        if NO_SPACE in str(seen):  # TF: "<file>; No space left on device"
            written = re.search(rf"(\S+); {NO_SPACE}", str(seen))
            return written.group(1) if written else ""
        seen = seen.__cause__ or seen.__context__
    return None


def run_id_of(runtime_spec) -> str | None:
    """The run id TFX substituted into a pipeline's runtime spec, if any."""
    return runtime_spec.pipeline_run_id.field_value.string_value or None


class ProgressBeamDagRunner(beam_dag_runner.BeamDagRunner):
    """BeamDagRunner that prints progress and remembers the id of its run."""

    _PIPELINE_NODE_DO_FN_CLS = ProgressNodeDoFn

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pipeline_ir = None

    def run_with_ir(self, pipeline, run_options=None):
        # TFX substitutes the run id into this very message, in place.
        self._pipeline_ir = pipeline
        return super().run_with_ir(pipeline, run_options)

    @property
    def run_id(self) -> str | None:
        """The id of the run this runner started (also after it failed);
        None before it started one."""
        return run_id_of(self._pipeline_ir.runtime_spec) if self._pipeline_ir else None
