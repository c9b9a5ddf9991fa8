"""Compiles the pipeline to Kubeflow Pipelines v2 YAML.

    python runners/kubeflow_runner.py --help
    python runners/kubeflow_runner.py --pipeline-root gs://BUCKET/root \\
        --data-root gs://BUCKET/spans --serving-model-dir gs://BUCKET/serving_model \\
        --kubeflow-image REGISTRY/cfpb-tfx-pipeline-task:TAG

Writes build/<pipeline_name>.yaml (or --kubeflow-output), ready to upload in
the KFP UI or with the kfp client. Orchestrator settings only: the graph is
pipeline.create_pipeline. `data_root` and `train_args` are runtime parameters
users can change per run in the KFP UI.

Two targets:
- `oss` (default): open-source KFP 2.5 or newer. Its backend runs only
  container and importer executors (backend/src/v2/compiler/visitor.go), never
  runs lifecycle hooks (nothing under backend/ reads `pre_cache_check`), and
  hands upstream artifacts to a task without their type
  (backend/src/v2/metadata/client.go, `Schema: ""`), which TFX's own v2
  container entrypoint cannot read. So KFP only schedules containers here:
  each task runs one node of the compiled TFX IR with TFX's portable launcher
  (runners/node_launcher.py) against the cluster's ML Metadata service. The
  Resolvers, ExampleGen's span driver and TFX's cache then run as in the Beam
  run: the full graph, the span chosen when the run starts. KFP's own task
  cache is off on every task, because a task's answer depends on ML Metadata
  state that is not among its KFP inputs (which model is blessed, which span
  is newest); TFX's cache decides instead. The cost: KFP's UI lists no
  artifacts for these tasks (they are in ML Metadata; `python -m
  reporting.summary` and the task logs show them).
- `vertex`: TFX's Vertex AI Pipelines spec (untested here: no Vertex project).
  Vertex runs the model Resolver itself, but compiles a resolver to a query on
  the artifact type alone (TFX's step_builder.py), so the drift baseline
  could be Transform's statistics, and the training window (a strategy of this
  project's) cannot be compiled at all: both resolvers are left out. Drift is
  not measured on Vertex (`--drift-blocks` is refused) and Transform reads the
  run's own span.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

TARGETS = ("oss", "vertex")
# The run's id as KFP's driver resolves it in a task input (backend/src/v2/
# driver/resolve.go, `{{$.pipeline_job_uuid}}`; from KFP 2.5.0 on).
RUN_ID_PLACEHOLDER = "{{$.pipeline_job_uuid}}"
RUN_ID_INPUT = "run_id"
NODE_LAUNCHER = ["python", "-m", "runners.node_launcher"]
_YAML_HEADER = "# PIPELINE DEFINITION\n"


def output_path(config) -> Path:
    from settings.configs import REPO_ROOT

    return Path(config.kubeflow_output or REPO_ROOT / "build" / f"{config.pipeline_name}.yaml")


def runtime_parameters(config):
    """Knobs users may set per run in the KFP UI, defaulting to the config."""
    from pipeline.pipeline import RuntimeParameter, RuntimeParameters

    return RuntimeParameters(
        data_root=RuntimeParameter(name="data_root", ptype=str, default=config.data_root),
        train_args=RuntimeParameter(
            name="train_args", ptype=str, default=json.dumps({"num_steps": config.train_steps})
        ),
    )


def _declared_parameters(runtime):
    return [
        getattr(runtime, f.name)
        for f in dataclasses.fields(runtime)
        if getattr(runtime, f.name) is not None
    ]


# What every task must reach, with the example a refusal shows.
CLUSTER_LOCATIONS = {
    "pipeline_root": "gs://BUCKET/pipeline_root",
    "data_root": "gs://BUCKET/spans",
    "serving_model_dir": "gs://BUCKET/serving_model",
}


def deployment_problems(config) -> list[str]:
    """What keeps `config` from running on a cluster, one line each: a local
    location (each task is a pod with its own disk, and the IR fixes these
    paths at compile time), a store TFX cannot use, no image."""
    from data import storage
    from settings import configs
    from settings.configs import is_remote

    problems = []
    for name, example in CLUSTER_LOCATIONS.items():
        value = getattr(config, name)
        flag = configs.flag(name)
        if not is_remote(value):
            problems.append(
                f"{flag} {value} is a local path: each task runs in its own pod, so use a "
                f"bucket every task can reach, e.g. {flag} {example}"
            )
        elif problem := storage.unsupported_scheme(value):
            problems.append(f"{flag} {value}: {problem}")
    if not config.kubeflow_image:
        problems.append(
            "--kubeflow-image is required: the image built from the Dockerfile and pushed "
            "where the cluster pulls from, e.g. --kubeflow-image "
            "REGISTRY/cfpb-tfx-pipeline-task:TAG (docs/kubeflow.md)"
        )
    return problems


def _image_relative_schema(config):
    """The curated schema as the image finds it: relative to the installed
    project, where it is package data (components/curated_schema.py)."""
    from components import curated_schema

    return dataclasses.replace(
        config, schema_path=curated_schema.project_relative(config.schema_path)
    )


def task_resources(config) -> dict:
    """Every task's CPU and memory, in the PipelineSpec fields every KFP 2.x
    backend reads (backend/src/v2/driver/driver.go, getPodResource: GB for
    memory). Memory is also the limit: a task above it is killed."""
    return {
        "cpuRequest": config.kubeflow_task_cpu,
        "memoryRequest": config.kubeflow_task_memory_gb,
        "memoryLimit": config.kubeflow_task_memory_gb,
    }


def _string_parameter(default: str | None = None) -> dict:
    parameter: dict[str, object] = {"parameterType": "STRING"}
    if default is not None:
        parameter.update(defaultValue=default, isOptional=True)
    return parameter


def open_source_spec(config) -> dict:
    """The `oss` PipelineSpec: one node-launcher container task per TFX node."""
    from kfp.dsl import utils as kfp_names
    from tfx import version as tfx_version
    from tfx.dsl.compiler import compiler

    from pipeline import pipeline
    from runners import node_launcher

    runtime = runtime_parameters(config)
    parameters = _declared_parameters(runtime)
    pipeline_ir = compiler.Compiler().compile(
        pipeline.create_pipeline(config.graph(), runtime=runtime)
    )
    task_names = {
        node.pipeline_node.node_info.id: kfp_names.sanitize_task_name(
            node.pipeline_node.node_info.id
        )
        for node in pipeline_ir.nodes
    }
    components, executors, tasks = {}, {}, {}
    for node_id, task_name in task_names.items():
        component_name = kfp_names.sanitize_component_name(node_id)
        executor_label = kfp_names.sanitize_executor_label(node_id)
        node = node_launcher.node_ir(pipeline_ir, node_id)
        inputs = [RUN_ID_INPUT] + [p.name for p in parameters]
        components[component_name] = {
            "executorLabel": executor_label,
            "inputDefinitions": {"parameters": {name: _string_parameter() for name in inputs}},
        }
        executors[executor_label] = {
            "container": {
                "image": config.kubeflow_image,
                "command": NODE_LAUNCHER,
                "args": [
                    "--pipeline-ir",
                    node_launcher.encode_ir(node),
                    "--node-id",
                    node_id,
                    "--run-id",
                    "{{$.inputs.parameters['%s']}}" % RUN_ID_INPUT,  # noqa: UP031 (KFP's braces)
                ]
                + (
                    ["--metadata-grpc", config.kubeflow_metadata_grpc]
                    if config.kubeflow_metadata_grpc
                    else []  # the pod's METADATA_GRPC_SERVICE_HOST/_PORT
                )
                + [
                    arg
                    for p in parameters
                    for arg in (
                        "--runtime-parameter",
                        "%s={{$.inputs.parameters['%s']}}" % (p.name, p.name),  # noqa: UP031
                    )
                ],
                "resources": task_resources(config),
            }
        }
        upstream = node_launcher.upstream_node_ids(node)
        tasks[task_name] = {
            "taskInfo": {"name": node_id},
            "componentRef": {"name": component_name},
            "dependentTasks": sorted(task_names[u] for u in upstream),
            # Off: see the module docstring. The run id input also keeps a
            # cache forced on (enable_caching=True at submission) from ever
            # matching an earlier run: KFP keys its cache on resolved inputs.
            "cachingOptions": {"enableCache": False},
            "inputs": {
                "parameters": {
                    RUN_ID_INPUT: {"runtimeValue": {"constant": RUN_ID_PLACEHOLDER}},
                    **{p.name: {"componentInputParameter": p.name} for p in parameters},
                }
            },
        }
    return {
        "pipelineInfo": {"name": config.pipeline_name},
        "schemaVersion": "2.1.0",
        "sdkVersion": f"tfx-{tfx_version.__version__}",
        "components": components,
        "deploymentSpec": {"executors": executors},
        "root": {
            "dag": {"tasks": tasks},
            "inputDefinitions": {
                "parameters": {p.name: _string_parameter(p.default) for p in parameters}
            },
        },
    }


def vertex_spec(config) -> dict:
    """TFX's own Vertex AI spec, without the project's resolvers (module docstring)."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from pipeline import pipeline

    if config.drift_blocks:
        raise ValueError(
            "--drift-blocks needs the drift baseline, which the vertex target cannot resolve "
            "correctly: TFX compiles resolvers for Vertex to a query on the artifact type "
            "only, so Transform's statistics could become the baseline. Use the oss target, "
            "or compile without --drift-blocks (drift is then not measured)."
        )
    runtime = runtime_parameters(config)
    tfx_pipeline = pipeline.create_pipeline(
        config.graph(), runtime=runtime, project_resolvers=False
    )
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=config.kubeflow_image,
            # TFX 1.16's YAML writer fails on runtime parameters with schema 2.0.
            use_pipeline_spec_2_1=True,
        ),
    )
    spec = runner.run(tfx_pipeline, write_out=False)["pipelineSpec"]
    # TFX 1.16 compiles RuntimeParameter defaults into nothing; without a
    # default the UI demands a value for every parameter.
    definitions = spec["root"]["inputDefinitions"]["parameters"]
    for parameter in _declared_parameters(runtime):
        definitions[parameter.name].update(defaultValue=parameter.default, isOptional=True)
    for executor in spec["deploymentSpec"]["executors"].values():
        if "container" in executor:
            executor["container"]["resources"] = task_resources(config)
    return spec


def compile_pipeline(config) -> Path:
    """Writes the KFP v2 pipeline YAML for `config`; returns its path."""
    import yaml

    if config.kubeflow_target not in TARGETS:
        raise ValueError(
            f"kubeflow_target must be one of {TARGETS}, not {config.kubeflow_target!r}"
        )
    problems = deployment_problems(config)
    if problems:
        raise ValueError("cannot compile for a cluster:\n  " + "\n  ".join(problems))
    config = _image_relative_schema(config)
    spec = (open_source_spec if config.kubeflow_target == "oss" else vertex_spec)(config)
    path = output_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        _YAML_HEADER + f"# Compiled by runners/kubeflow_runner.py for target "
        f"'{config.kubeflow_target}' with {spec.get('sdkVersion', '?')}.\n"
        + yaml.safe_dump(spec, sort_keys=True)
    )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    from settings import configs

    parser = argparse.ArgumentParser(
        prog="python runners/kubeflow_runner.py",
        description="Compile the CFPB dispute pipeline to Kubeflow Pipelines v2 YAML.",
    )
    config, _ = configs.parse_args(parser, argv)
    try:
        path = compile_pipeline(config)
    except ValueError as e:
        parser.error(str(e))
    print(f"Wrote {path} (target {config.kubeflow_target}, image {config.kubeflow_image})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
