"""The contract runners/beam_progress.py relies on inside TFX's BeamDagRunner.

TFX offers no public hook for per-node progress; these fail on a TFX upgrade
that changes the hook, so the progress lines are never silently lost (or the
runner broken) without a message saying where to look.
"""

import errno
import inspect

import tensorflow as tf
from tfx.orchestration.beam import beam_dag_runner

from runners import beam_progress

WHY = (
    "TFX changed how BeamDagRunner builds node DoFns; runners/beam_progress.py "
    "subclasses PipelineNodeAsDoFn through BeamDagRunner._PIPELINE_NODE_DO_FN_CLS"
)


def test_beam_dag_runner_still_builds_node_dofns_from_the_class_attribute():
    assert beam_dag_runner.BeamDagRunner._PIPELINE_NODE_DO_FN_CLS is (
        beam_dag_runner.PipelineNodeAsDoFn
    ), WHY
    source = inspect.getsource(beam_dag_runner.BeamDagRunner)
    assert "self._PIPELINE_NODE_DO_FN_CLS(" in source, WHY
    assert beam_progress.ProgressBeamDagRunner._PIPELINE_NODE_DO_FN_CLS is (
        beam_progress.ProgressNodeDoFn
    )


def test_the_node_dofn_takes_the_keyword_arguments_the_subclass_reads():
    parameters = inspect.signature(beam_dag_runner.PipelineNodeAsDoFn.__init__).parameters
    assert {"pipeline_node", "mlmd_connection_config", "pipeline_info"} <= set(parameters), WHY
    source = inspect.getsource(beam_dag_runner.BeamDagRunner)
    for keyword in ("pipeline_node=", "mlmd_connection_config=", "pipeline_info="):
        assert keyword in source, WHY


def test_the_subclass_keeps_its_own_copies_of_what_it_prints():
    from tfx.proto.orchestration import pipeline_pb2

    node = pipeline_pb2.PipelineNode()
    node.node_info.id = "Trainer"
    runtime_spec = pipeline_pb2.PipelineRuntimeSpec()
    runtime_spec.pipeline_run_id.field_value.string_value = "20261202-120000.000000"
    do_fn = beam_progress.ProgressNodeDoFn(
        pipeline_node=node,
        mlmd_connection_config=None,
        pipeline_info=pipeline_pb2.PipelineInfo(id="cfpb-disputes"),
        pipeline_runtime_spec=runtime_spec,
        executor_spec=None,
        custom_driver_spec=None,
        deployment_config=None,
        pipeline=None,
    )
    assert (do_fn.node_id, do_fn.pipeline_id, do_fn.run_id) == (
        "Trainer",
        "cfpb-disputes",
        "20261202-120000.000000",
    )


def test_run_with_ir_writes_the_run_id_into_the_ir_it_was_given():
    """The runner reads its run's id from the IR after (or while) running it."""
    source = inspect.getsource(beam_dag_runner.BeamDagRunner.run_with_ir)
    assert "substitute_runtime_parameter(" in source, WHY
    assert "PIPELINE_RUN_ID_PARAMETER_NAME: run_id" in source, WHY
    assert "pipeline_runtime_spec=pipeline.runtime_spec" in inspect.getsource(
        beam_dag_runner.BeamDagRunner
    ), WHY


def test_a_full_disk_is_recognized_in_what_os_and_tensorflow_raise():
    os_error = OSError(errno.ENOSPC, "No space left on device", "/root/Trainer/model")
    assert beam_progress.full_disk_file(os_error) == "/root/Trainer/model"
    tf_error = tf.errors.ResourceExhaustedError(
        None, None, "{{function_node x}} /root/Trainer/events.v2; No space left on device"
    )
    try:  # as the launcher wraps an executor's error
        raise RuntimeError("component failed") from tf_error
    except RuntimeError as wrapped:
        assert beam_progress.full_disk_file(wrapped) == "/root/Trainer/events.v2"
    assert beam_progress.full_disk_file(OSError(errno.ENOSPC, "No space left on device")) == ""
    assert beam_progress.full_disk_file(tf.errors.ResourceExhaustedError(None, None, "OOM")) is None
    assert beam_progress.full_disk_file(ValueError("bad input")) is None


def test_ml_metadata_out_of_reach_is_one_line():
    # TFX's text after its retries (tfx/orchestration/metadata.py), wrapped by Beam.
    unreachable = RuntimeError(
        "Failed to establish connection to Metadata storage with error: "
        "mysql_real_connect failed: errno: , error: "
    )
    try:
        raise RuntimeError("[while running 'Run[Transform]']") from unreachable
    except RuntimeError as wrapped:
        fault = beam_progress.machine_fault(wrapped)
    assert fault.startswith("ML Metadata cannot be reached (Failed to establish connection")
    assert beam_progress.machine_fault(ValueError("bad input")) is None


def test_the_store_lost_mid_call_is_one_line():
    # What ML Metadata raised when MariaDB restarted during ExampleGen's query
    # (python -m bench.faults --cells mariadb:CsvExampleGen).
    from ml_metadata import errors

    lost = errors.InternalError(
        "mysql_query failed: errno: Lost connection to MySQL server during query, "
        "error: Lost connection to MySQL server during query"
    )
    fault = beam_progress.machine_fault(lost)
    assert fault == (
        "ML Metadata cannot be reached (mysql_query failed: errno: Lost connection to "
        "MySQL server during query, error: Lost connection to MySQL server during query)"
    )


def test_the_object_store_out_of_reach_after_the_retries_is_one_line():
    # What TF's GCS filesystem raised with the store down 5 minutes during the
    # Trainer (python -m bench.faults --cells objectstore-outage:Trainer).
    import tensorflow as tf

    gave_up = tf.errors.AbortedError(
        None,
        None,
        "All 10 retry attempts failed. The last failure: Error executing an HTTP request: "
        "libcurl code 7 meaning 'Couldn't connect to server', error details: Failed to "
        "connect to 127.0.0.1 port 39615 after 0 ms: Couldn't connect to server\n"
        "\t when reading metadata of gs://cfpb/pipeline_root/Trainer/.system/executor_execution/9",
    )
    fault = beam_progress.machine_fault(gave_up)
    assert fault.startswith("the object store cannot be reached (All 10 retry attempts failed.")
    assert fault.endswith(" using gs://cfpb/pipeline_root/Trainer/.system/executor_execution/9")
    assert beam_progress.machine_fault(tf.errors.AbortedError(None, None, "aborted")) is None
