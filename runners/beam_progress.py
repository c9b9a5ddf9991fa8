"""BeamDagRunner that prints one line per component instead of TFX's INFO logs.

Lives in its own importable module because Beam pickles the node DoFn class by
reference; a class defined inside `__main__` or a function cannot be pickled.

The contract with TFX (1.16), which has no public hook for this: BeamDagRunner
builds each node's DoFn from its class attribute `_PIPELINE_NODE_DO_FN_CLS`
with PipelineNodeAsDoFn's documented keyword arguments. The subclass keeps its
own copies of the arguments it needs instead of reading TFX's private
attributes; tests/runners/test_beam_progress.py fails, saying this, when a TFX
upgrade changes either side.
"""

from __future__ import annotations

import time
import traceback

from tfx.orchestration.beam import beam_dag_runner

from components import validation_gate
from reporting import summary

# Failures a user acts on from the message alone: no traceback for these.
EXPECTED_FAILURES = (validation_gate.DataValidationError,)

# Nodes that failed in this process, their error already printed on their
# line: the runner names them instead of repeating Beam's wrapped error.
FAILED_NODES: list[str] = []


class ProgressNodeDoFn(beam_dag_runner.PipelineNodeAsDoFn):
    """Runs one node exactly as TFX does, printing when it starts and ends."""

    def __init__(self, *, pipeline_node, mlmd_connection_config, pipeline_info, **kwargs):
        super().__init__(
            pipeline_node=pipeline_node,
            mlmd_connection_config=mlmd_connection_config,
            pipeline_info=pipeline_info,
            **kwargs,
        )
        self.node_id = pipeline_node.node_info.id
        self.connection_config = mlmd_connection_config
        self.pipeline_id = pipeline_info.id

    def process(self, element, *signals):
        print(f"  > {self.node_id} ...", flush=True)
        started = time.monotonic()
        try:
            super().process(element, *signals)
        except Exception as error:
            print(
                f"  x {self.node_id} failed after {time.monotonic() - started:.1f}s: "
                f"{type(error).__name__}: {error}",
                flush=True,
            )
            if not isinstance(error, EXPECTED_FAILURES):
                print(traceback.format_exc(), flush=True)
            FAILED_NODES.append(self.node_id)
            raise
        state = summary.latest_node_state(self.connection_config, self.pipeline_id, self.node_id)
        print(f"  = {self.node_id} {state} in {time.monotonic() - started:.1f}s", flush=True)


class ProgressBeamDagRunner(beam_dag_runner.BeamDagRunner):
    _PIPELINE_NODE_DO_FN_CLS = ProgressNodeDoFn
