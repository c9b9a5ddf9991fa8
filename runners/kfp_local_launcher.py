"""Runs a compiled KFP v2 pipeline YAML on this machine, one task at a time.

A development stand-in for a Kubeflow cluster, not a KFP backend: it proves
that the YAML `runners/kubeflow_runner.py` writes is executable. For each task
in dependency order it does what KFP's v2 driver and launcher do for a
container task, and no more:

- builds the task's ExecutorInput: parameter values from the task's constants
  and the pipeline's runtime parameters, input artifacts from the upstream
  tasks' ExecutorOutputs, output artifact URIs under the pipeline root;
- runs the task's container command and args, with `{{$}}` replaced by that
  ExecutorInput, in a subprocess of this venv (here the "image" is the venv);
- reads the ExecutorOutput the task wrote and passes its artifacts downstream.

Like open-source KFP v2 it runs no lifecycle hooks and refuses executors other
than containers (resolvers, importers). There is no MLMD and no cache.

    python runners/kfp_local_launcher.py build/cfpb-disputes.yaml \\
        --pipeline-root build/kfp_local --param train_args='{"num_steps": 100}'
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Sequence

_PLACEHOLDER = "{{$}}"


class UnsupportedSpec(ValueError):
    """The spec needs something a KFP v2 container launcher cannot do."""


def load_pipeline_spec(path: Path):
    """Parses the YAML into KFP's PipelineSpec proto; unknown fields fail."""
    import yaml
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    return json_format.ParseDict(yaml.safe_load(path.read_text()),
                                 pipeline_spec_pb2.PipelineSpec())


def deployment_config(spec):
    """The spec's executors, typed (PipelineSpec keeps them as a Struct)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    return json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec),
                                 pipeline_spec_pb2.PipelineDeploymentConfig())


def task_order(spec) -> List[str]:
    """Root DAG task names in an order that respects every dependency."""
    tasks = spec.root.dag.tasks
    order, done = [], set()
    while len(order) < len(tasks):
        ready = sorted(name for name, task in tasks.items()
                       if name not in done and set(task.dependent_tasks) <= done)
        if not ready:
            raise UnsupportedSpec(f"dependency cycle among {sorted(set(tasks) - done)}")
        order += ready
        done.update(ready)
    return order


def _root_parameters(spec, overrides: Dict[str, str]) -> Dict[str, object]:
    from google.protobuf import json_format
    values = {}
    for name, definition in spec.root.input_definitions.parameters.items():
        if name in overrides:
            values[name] = overrides[name]
        elif definition.HasField("default_value"):
            values[name] = json_format.MessageToDict(definition.default_value)
        else:
            raise UnsupportedSpec(f"runtime parameter {name!r} has no default; pass --param")
    unknown = set(overrides) - set(values)
    if unknown:
        raise UnsupportedSpec(f"unknown runtime parameters: {sorted(unknown)}")
    return values


def _executor_input(spec, task_name: str, root_values, outputs_by_task, run_root: str):
    from google.protobuf import json_format, struct_pb2
    from kfp.pipeline_spec import pipeline_spec_pb2

    task = spec.root.dag.tasks[task_name]
    component = spec.components[task.component_ref.name]
    executor_input = pipeline_spec_pb2.ExecutorInput()

    for name, parameter in task.inputs.parameters.items():
        kind = parameter.WhichOneof("kind")
        if kind == "runtime_value":
            executor_input.inputs.parameter_values[name].CopyFrom(parameter.runtime_value.constant)
        elif kind == "component_input_parameter":
            value = struct_pb2.Value()
            json_format.Parse(json.dumps(root_values[parameter.component_input_parameter]), value)
            executor_input.inputs.parameter_values[name].CopyFrom(value)
        else:
            raise UnsupportedSpec(f"{task_name}.{name}: parameter source {kind} not supported")

    for name, artifact in task.inputs.artifacts.items():
        producer = artifact.task_output_artifact
        if not producer.producer_task:
            raise UnsupportedSpec(f"{task_name}.{name}: only upstream task artifacts supported")
        executor_input.inputs.artifacts[name].CopyFrom(
            outputs_by_task[producer.producer_task][producer.output_artifact_key])

    task_root = f"{run_root}/{task_name}"
    for name, definition in component.output_definitions.artifacts.items():
        runtime_artifact = executor_input.outputs.artifacts[name].artifacts.add()
        runtime_artifact.name = f"{task_name}-{name}-{uuid.uuid4().hex[:8]}"
        runtime_artifact.uri = f"{task_root}/{name}"
        runtime_artifact.type.CopyFrom(definition.artifact_type)
    executor_input.outputs.output_file = f"{task_root}/executor_output.json"
    return executor_input


def _run_container(container, executor_input, log_path: Path) -> None:
    from google.protobuf import json_format
    invocation = json_format.MessageToJson(executor_input)
    args = [arg.replace(_PLACEHOLDER, invocation) for arg in container.args]
    command = list(container.command)
    if command[:1] == ["python"]:
        command[0] = sys.executable  # the venv stands in for the image
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    from pipeline.configs import REPO_ROOT
    with open(log_path, "w") as log:
        # The project folder stands in for the image's working directory.
        result = subprocess.run(command + args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=REPO_ROOT)
    if result.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"container exited {result.returncode}; log {log_path}:\n{tail}")


def _recorded(given, reported):
    """An output artifact as KFP records it for downstream tasks: the name,
    URI and type the launcher assigned, with the metadata the executor
    reported (TFX's ExecutorOutput carries no artifact type)."""
    from kfp.pipeline_spec import pipeline_spec_pb2
    recorded = pipeline_spec_pb2.ArtifactList()
    recorded.CopyFrom(given)
    for artifact, update in zip(recorded.artifacts, reported.artifacts if reported else []):
        artifact.metadata.update(update.metadata)
        if update.uri:
            artifact.uri = update.uri
    return recorded


def run(spec_path: Path, pipeline_root: Path, parameters: Optional[Dict[str, str]] = None,
        echo=print) -> Dict[str, Dict[str, object]]:
    """Runs every task; returns each task's output artifacts (ArtifactList protos)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = load_pipeline_spec(spec_path)
    root_values = _root_parameters(spec, parameters or {})
    run_root = str(pipeline_root.resolve() / f"run-{time.strftime('%Y%m%d-%H%M%S')}")
    Path(run_root).mkdir(parents=True)
    outputs_by_task: Dict[str, Dict[str, object]] = {}

    deployment = deployment_config(spec)
    executors = {}
    for task_name in task_order(spec):  # refuse the spec before running anything
        component = spec.components[spec.root.dag.tasks[task_name].component_ref.name]
        executors[task_name] = deployment.executors[component.executor_label]
        if not executors[task_name].HasField("container"):
            raise UnsupportedSpec(
                f"{task_name}: {executors[task_name].WhichOneof('spec')} executors do not run "
                "on open-source KFP v2 (compile with --kubeflow-target oss)")

    for task_name, executor in executors.items():
        executor_input = _executor_input(spec, task_name, root_values, outputs_by_task, run_root)
        echo(f"  > {task_name} ...")
        started = time.monotonic()
        Path(run_root, task_name).mkdir(parents=True, exist_ok=True)
        _run_container(executor.container, executor_input, Path(run_root, task_name, "log.txt"))

        executor_output = pipeline_spec_pb2.ExecutorOutput()
        json_format.Parse(Path(executor_input.outputs.output_file).read_text(), executor_output,
                          ignore_unknown_fields=True)
        outputs_by_task[task_name] = {
            name: _recorded(given, executor_output.artifacts.get(name))
            for name, given in executor_input.outputs.artifacts.items()}
        echo(f"  = {task_name} finished in {time.monotonic() - started:.1f}s")
    return outputs_by_task


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python runners/kfp_local_launcher.py",
        description="Run a compiled KFP v2 pipeline YAML locally, task by task "
                    "(a development stand-in for a Kubeflow cluster).")
    parser.add_argument("spec", type=Path, help="pipeline YAML from runners/kubeflow_runner.py")
    parser.add_argument("--pipeline-root", type=Path, required=True,
                        help="local folder for the run's artifacts")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="runtime parameter value (repeatable)")
    args = parser.parse_args(argv)
    parameters = dict(p.split("=", 1) for p in args.param)
    try:
        outputs = run(args.spec, args.pipeline_root, parameters)
    except (UnsupportedSpec, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    pushed = outputs.get("Pusher", {}).get("pushed_model")
    if pushed is not None:
        print(f"Pusher output: {pushed.artifacts[0].uri} "
              f"(metadata {json.dumps(dict(pushed.artifacts[0].metadata))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
