"""BeamDagRunner that prints one line per component instead of TFX's INFO logs.

Lives in its own importable module because Beam pickles the node DoFn class by
reference; a class defined inside `__main__` or a function cannot be pickled.
"""

from __future__ import annotations

import time
import traceback

from tfx.orchestration.beam import beam_dag_runner

from components import validation_gate
from pipeline import summary

# Failures a user acts on from the message alone: no traceback for these.
EXPECTED_FAILURES = (validation_gate.DataValidationError,)

# Nodes that failed in this process, their error already printed on their
# line: the runner names them instead of repeating Beam's wrapped error.
FAILED_NODES: list[str] = []


class ProgressNodeDoFn(beam_dag_runner.PipelineNodeAsDoFn):
    """Runs one node exactly as TFX does, printing when it starts and ends."""

    def process(self, element, *signals):
        print(f"  > {self._node_id} ...", flush=True)
        started = time.monotonic()
        try:
            super().process(element, *signals)
        except Exception as error:
            print(
                f"  x {self._node_id} failed after {time.monotonic() - started:.1f}s: "
                f"{type(error).__name__}: {error}",
                flush=True,
            )
            if not isinstance(error, EXPECTED_FAILURES):
                print(traceback.format_exc(), flush=True)
            FAILED_NODES.append(self._node_id)
            raise
        state = summary.latest_node_state(
            self._mlmd_connection_config, self._pipeline_info.id, self._node_id
        )
        print(f"  = {self._node_id} {state} in {time.monotonic() - started:.1f}s", flush=True)


class ProgressBeamDagRunner(beam_dag_runner.BeamDagRunner):
    _PIPELINE_NODE_DO_FN_CLS = ProgressNodeDoFn
