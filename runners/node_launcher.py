"""Runs one node of the compiled TFX pipeline (its IR) against an ML Metadata store.

Every Airflow task (runners/airflow_runner.py, in-process through `launch`)
and every Kubeflow task of the `oss` target runs this; on Kubeflow, in the
task image:

    python -m runners.node_launcher --pipeline-ir IR --node-id Trainer \\
        --run-id RUN --runtime-parameter 'train_args={"num_steps": 2000}'

(the metadata service from KFP's METADATA_GRPC_SERVICE_HOST/_PORT, or
--metadata-grpc HOST:PORT).

It does for one node what TFX's BeamDagRunner does for each node in one
process (`tfx/orchestration/beam/beam_dag_runner.py`, PipelineNodeAsDoFn):
substitute the run id and runtime parameters into the IR, then launch the node
with TFX's portable Launcher. So the Resolvers, ExampleGen's span driver
(`{SPAN}` resolved to the newest span present when the task starts) and TFX's
own cache run exactly as in a local run, against the cluster's metadata store.
KFP only schedules the containers; its own task cache is off (see
runners/kubeflow_runner.py).
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import sys
import zlib
from collections.abc import Mapping, Sequence

# What an unresolved KFP run-id placeholder looks like: backends before 2.5
# pass task-input constants through verbatim (backend/src/v2/driver/driver.go
# resolves `{{$.pipeline_job_uuid}}` from 2.5.0 on).
_UNRESOLVED_PLACEHOLDER = "{{$"
# Where KFP tells every task pod its ML Metadata service (EnvFrom the
# metadata-grpc-configmap: backend/src/v2/compiler/argocompiler/container.go).
KFP_METADATA_HOST = "METADATA_GRPC_SERVICE_HOST"
KFP_METADATA_PORT = "METADATA_GRPC_SERVICE_PORT"


def kfp_metadata_address(environ: Mapping[str, str]) -> str | None:
    """HOST:PORT of the metadata service KFP gives a pod, or None outside KFP."""
    host, port = environ.get(KFP_METADATA_HOST), environ.get(KFP_METADATA_PORT)
    return f"{host}:{port}" if host and port else None


def encode_ir(pipeline_ir) -> str:
    """The pipeline IR as one compact command-line word (zlib, then base64)."""
    return base64.b64encode(
        zlib.compress(pipeline_ir.SerializeToString(deterministic=True), 9)
    ).decode("ascii")


def decode_ir(text: str):
    from tfx.proto.orchestration import pipeline_pb2

    pipeline_ir = pipeline_pb2.Pipeline()
    pipeline_ir.ParseFromString(zlib.decompress(base64.b64decode(text)))
    return pipeline_ir


def node_ir(pipeline_ir, node_id: str):
    """The IR one node's task needs: the pipeline's info and runtime spec, the
    node, and only its own deployment entries (a task carries it in its args,
    so the YAML stays small however many nodes the pipeline has)."""
    from tfx.proto.orchestration import pipeline_pb2

    sliced = pipeline_pb2.Pipeline()
    sliced.CopyFrom(pipeline_ir)
    del sliced.nodes[:]
    sliced.nodes.add().pipeline_node.CopyFrom(_node(pipeline_ir, node_id))
    deployment = pipeline_pb2.IntermediateDeploymentConfig()
    pipeline_ir.deployment_config.Unpack(deployment)
    for per_node in (
        deployment.executor_specs,
        deployment.custom_driver_specs,
        deployment.node_level_platform_configs,
    ):
        for other in [key for key in per_node if key != node_id]:
            del per_node[other]
    sliced.deployment_config.Pack(deployment)
    return sliced


def upstream_node_ids(pipeline_ir) -> list[str]:
    """The ids of the nodes the (single) node of `pipeline_ir` waits for."""
    (node,) = pipeline_ir.nodes
    return list(node.pipeline_node.upstream_nodes)


def _parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _node(pipeline_ir, node_id: str):
    for node in pipeline_ir.nodes:
        if (
            node.WhichOneof("node") == "pipeline_node"
            and node.pipeline_node.node_info.id == node_id
        ):
            return node.pipeline_node
    known = [n.pipeline_node.node_info.id for n in pipeline_ir.nodes]
    raise ValueError(f"node {node_id!r} is not in the pipeline IR (nodes: {', '.join(known)})")


def launch(
    pipeline_ir,
    node_id: str,
    run_id: str,
    connection_config,
    parameters: dict[str, str] | None = None,
):
    """Launches `node_id` of `pipeline_ir` in run `run_id` (TFX decides whether
    its cache answers); raises when the node fails, and StorageError before
    it starts when the pipeline root's store cannot be used."""
    from tfx.dsl.compiler import constants
    from tfx.orchestration import metadata
    from tfx.orchestration.local import runner_utils
    from tfx.orchestration.portable import launcher, runtime_parameter_utils

    from components import curated_schema
    from data import storage
    from settings import beam
    from settings.configs import flag

    if not run_id or _UNRESOLVED_PLACEHOLDER in run_id:
        raise ValueError(
            f"run id {run_id!r} was not resolved by the orchestrator: this KFP backend is "
            "older than 2.5, which resolves {{$.pipeline_job_uuid}} in task inputs"
        )
    bindings: dict[str, object] = {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
    bindings.update(parameters or {})
    runtime_parameter_utils.substitute_runtime_parameter(pipeline_ir, bindings)
    deployment = runner_utils.extract_local_deployment_config(pipeline_ir)
    node = _node(pipeline_ir, node_id)
    curated_schema.check_unchanged(node)
    # A pod without credentials, or a store that is down, is one line here
    # within seconds, not a traceback after TF's retries in the executor.
    storage.check_reachable(
        pipeline_ir.runtime_spec.pipeline_root.field_value.string_value, flag("pipeline_root")
    )
    executor_spec = runner_utils.extract_executor_spec(deployment, node_id)
    # A Beam component's engine likewise (only Beam components' specs carry
    # Beam options).
    beam.check_reachable(getattr(executor_spec, "beam_pipeline_args", ()))
    launcher.Launcher(
        pipeline_node=node,
        mlmd_connection=metadata.Metadata(connection_config),
        pipeline_info=pipeline_ir.pipeline_info,
        pipeline_runtime_spec=pipeline_ir.runtime_spec,
        executor_spec=executor_spec,
        custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment, node_id),
    ).launch()
    record_code_version(connection_config, run_id)


def record_code_version(connection_config, run_id: str | None) -> str | None:
    """Writes which code ran (settings/code_version.py) on the run's
    `pipeline_run` context, for the report and the model card; every task of
    a run writes the same value. A store that refuses it only loses that
    line: the error is returned, never raised."""
    from ml_metadata import metadata_store

    from settings import code_version

    if run_id is None:
        return None
    try:
        store = metadata_store.MetadataStore(connection_config)
        run = store.get_context_by_type_and_name("pipeline_run", run_id)
        if run is not None:
            run.custom_properties[code_version.PROPERTY].string_value = code_version.describe()
            store.put_contexts([run])
    except Exception as error:  # noqa: BLE001 - the run's outcome stands
        return f"code version not recorded: {error}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runners.node_launcher",
        description="Run one node of a compiled TFX pipeline IR with TFX's portable launcher "
        "(what each Kubeflow task of the 'oss' target runs).",
    )
    parser.add_argument(
        "--pipeline-ir", required=True, help="the pipeline IR, zlib-compressed and base64-encoded"
    )
    parser.add_argument("--node-id", required=True, help="the TFX component id to run")
    parser.add_argument(
        "--run-id", required=True, help="the pipeline run id (on KFP: {{$.pipeline_job_uuid}})"
    )
    parser.add_argument(
        "--runtime-parameter",
        type=_parameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline runtime parameter (repeatable)",
    )
    from data import storage
    from settings import beam, configs, metadata

    # The store: --metadata-grpc or CFPB_METADATA_GRPC when the YAML names one,
    # else the service KFP tells every pod about.
    config, args = configs.parse_args(parser, argv, names=("metadata_grpc",))
    address = config.metadata_grpc or kfp_metadata_address(os.environ)
    if not address:
        parser.error(
            "no ML Metadata service: pass --metadata-grpc HOST:PORT (or CFPB_METADATA_GRPC), "
            f"or run where KFP sets {KFP_METADATA_HOST} and {KFP_METADATA_PORT}"
        )

    # Task logs are what the KFP UI shows: TFX's INFO lines name each step.
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        connection = metadata.grpc_connection(address)
        pipeline_ir = decode_ir(args.pipeline_ir)
        parameters: list[tuple[str, str]] = args.runtime_parameter
        launch(pipeline_ir, args.node_id, args.run_id, connection, dict(parameters))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (storage.StorageError, beam.EngineUnreachable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"node {args.node_id} of run {args.run_id} finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
