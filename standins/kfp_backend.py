"""DEVELOPMENT STAND-IN for an open-source Kubeflow Pipelines 2.x backend.

Runs a compiled pipeline YAML on this machine the way KFP's backend runs it
on a cluster, so a YAML that fails there fails here. Each behaviour follows
the kubeflow/pipelines source named beside it (backend/src/v2/, read at
2.17 and HEAD; the parts used here are unchanged since 2.5):

- Executors (compiler/visitor.go): only container and importer executors
  compile; anything else is refused before the run with KFP's error text
  `executor(label=...): non-container and non-importer executor not
  implemented`. (This stand-in runs containers only; an importer is refused
  with a message of its own.)
- Lifecycle hooks (api/v2alpha1/pipeline_spec.proto `Lifecycle.pre_cache_check`):
  nothing under backend/ reads them, so they are silently never run. KFP has
  no error text for them; the stand-in runs none and lists each one it
  skipped in the run's `skipped_hooks`.
- Task inputs (driver/resolve.go): parameters from constants, with the
  `{{$.pipeline_job_uuid}}`-style placeholders resolved (resolve.go
  resolveInputParameter), and from the pipeline's runtime parameters.
  Upstream artifacts come from ML Metadata, converted as the driver does
  (metadata/client.go GetOutputArtifactsByExecutionId: `Schema: ""`;
  OutputArtifact.ToRuntimeArtifact: type `instanceSchema: ""`;
  metadata/converter.go toRuntimeArtifact: name = MLMD id, properties and
  custom properties in `metadata`).
- Outputs (driver/driver.go provisionOutputs): URIs under
  `<pipeline root>/<pipeline name>/<run id>/<task>/<output>`, typed from the
  component's output definitions.
- Command line (component/launcher_v2.go compileCmdAndArgs, getPlaceholders):
  `{{$}}` becomes the ExecutorInput JSON; `{{$.inputs.parameters['x']}}` and
  artifact `.uri` placeholders are replaced by plain text substitution.
  An executor output file that does not exist means no outputs
  (getExecutorOutputFile); reported artifacts are merged into the
  provisioned ones (mergeRuntimeArtifacts).
- ML Metadata records (metadata/client.go): contexts `system.Pipeline`
  (pipeline name) and `system.PipelineRun` (run id); one
  `system.ContainerExecution` per task with display_name, task_name, image,
  pod_name, namespace, cache_fingerprint and cached_execution_id custom
  properties, RUNNING then COMPLETE, FAILED or CACHED; output artifacts typed
  by their schema title, with `metadata` as custom properties
  (converter.go toMLMDArtifact, StructValueToMLMDValue).
- Cache (driver/cache.go, cacheutils/cache.go): only for tasks whose
  `cachingOptions.enableCache` is true; the key is the task's resolved input
  parameters, input artifact names, output specs, image and unresolved
  command and args; a hit reuses the earlier execution's outputs and runs
  nothing.
- Scheduling (Argo's DAG): a task starts once every task it depends on has
  succeeded, independent tasks at the same time; after a failure no new task
  starts.

Each task runs in a pod of its own (standins/kfp_pod.py): the task image's
interpreter (standins/task_image.py), an empty disk, only a pod's environment,
its memory limit enforced. Differences that do not change what a task sees:
the cache index is the executions' cache_fingerprint in ML Metadata instead of
the API server's task table; output artifact URIs are under a local
`--pipeline-root` (the compiled oss tasks declare none: TFX writes under its
own pipeline root).

    python -m standins.kfp_backend build/cfpb-disputes.yaml --pipeline-root build/kfp/root \\
        --metadata-grpc 127.0.0.1:8080 --param train_args='{"num_steps": 100}' \\
        --object-store-env build/object_store/env.sh
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent import futures
from pathlib import Path

from standins import kfp_pod

EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"
PIPELINE_CONTEXT_TYPE = "system.Pipeline"
RUN_CONTEXT_TYPE = "system.PipelineRun"
EXECUTION_TYPE = "system.ContainerExecution"
NAMESPACE = "kubeflow"


class Refused(ValueError):
    """KFP's backend would refuse this spec; the message is KFP's own text."""


class TaskFailed(RuntimeError):
    """A task's container exited non-zero; the run stopped there."""


def load_pipeline_spec(path: Path):
    """Parses the YAML into KFP's PipelineSpec proto; unknown fields fail."""
    import yaml
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    return json_format.ParseDict(yaml.safe_load(path.read_text()), pipeline_spec_pb2.PipelineSpec())


def deployment_config(spec):
    """The spec's executors, typed (PipelineSpec keeps them as a Struct)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    return json_format.ParseDict(
        json_format.MessageToDict(spec.deployment_spec),
        pipeline_spec_pb2.PipelineDeploymentConfig(),
    )


def check_executors(spec, deployment) -> None:
    """compiler/visitor.go: every executor must be a container or an importer."""
    for name, component in sorted(spec.components.items()):
        label = component.executor_label
        if not label:
            continue
        if label not in deployment.executors:
            raise Refused(
                f'error processing component name="{name}": '
                f'executor(label="{label}") not found in deployment config'
            )
        kind = deployment.executors[label].WhichOneof("spec")
        if kind == "importer":
            raise NotImplementedError(
                f"{name}: importer executors run on KFP, but not in this stand-in"
            )
        if kind != "container":
            raise Refused(
                f'error processing component name="{name}": executor(label="{label}"): '
                "non-container and non-importer executor not implemented"
            )


def task_order(spec) -> list[str]:
    """Root DAG task names in an order that respects every dependency."""
    tasks = spec.root.dag.tasks
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(tasks):
        ready = sorted(
            name
            for name, task in tasks.items()
            if name not in done and set(task.dependent_tasks) <= done
        )
        if not ready:
            raise Refused(f"dependency cycle among {sorted(set(tasks) - done)}")
        order += ready
        done.update(ready)
    return order


def _root_parameters(spec, overrides: dict[str, str]) -> dict[str, object]:
    from google.protobuf import json_format

    values: dict[str, object] = {}
    for name, definition in spec.root.input_definitions.parameters.items():
        if name in overrides:
            values[name] = overrides[name]
        elif definition.HasField("default_value"):
            values[name] = json_format.MessageToDict(definition.default_value)
        else:
            raise Refused(f"runtime parameter {name!r} has no default and no value")
    unknown = set(overrides) - set(values)
    if unknown:
        raise Refused(f"unknown runtime parameters: {sorted(unknown)}")
    return values


@dataclasses.dataclass
class TaskResult:
    name: str
    state: str  # COMPLETE, CACHED or FAILED
    execution_id: int
    outputs: dict[str, object]  # output key -> ArtifactList
    log: Path | None
    pod: kfp_pod.PodResult | None = None  # None when KFP's cache answered


@dataclasses.dataclass
class RunResult:
    run_id: str
    tasks: dict[str, TaskResult]
    skipped_hooks: list[str]
    failed: str | None = None


class _Metadata:
    """What KFP's driver and launcher write to and read from ML Metadata."""

    def __init__(self, connection_config, pipeline_name: str, run_id: str, pipeline_root: str):
        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_pb2 as pb

        self.pb = pb
        self.store = metadata_store.MetadataStore(connection_config)
        self._lock = threading.Lock()
        self.pipeline_context = self._context(PIPELINE_CONTEXT_TYPE, pipeline_name, {})
        self.run_context = self._context(
            RUN_CONTEXT_TYPE,
            run_id,
            {"namespace": NAMESPACE, "resource_name": run_id, "pipeline_root": pipeline_root},
        )
        self.execution_type_id = self.store.put_execution_type(
            pb.ExecutionType(name=EXECUTION_TYPE)
        )

    def _context(self, type_name: str, name: str, properties: dict[str, str]):
        pb = self.pb
        type_id = self.store.put_context_type(pb.ContextType(name=type_name))
        existing = self.store.get_context_by_type_and_name(type_name, name)
        if existing is not None:
            return existing
        context = pb.Context(type_id=type_id, name=name)
        for key, value in properties.items():
            context.custom_properties[key].string_value = value
        context.id = self.store.put_contexts([context])[0]
        return context

    def cached_execution(self, fingerprint: str):
        """cacheutils GetExecutionCache: a finished execution of this pipeline with the key."""
        for execution in self.store.get_executions_by_context(self.pipeline_context.id):
            if (
                execution.custom_properties.get("cache_fingerprint") is not None
                and execution.custom_properties["cache_fingerprint"].string_value == fingerprint
                and execution.last_known_state == self.pb.Execution.COMPLETE
            ):
                return execution
        return None

    def start_execution(
        self,
        task_name: str,
        image: str,
        fingerprint: str,
        inputs: dict,
        input_artifact_ids: dict[str, list[int]],
        cached_id: int | None = None,
    ):
        pb = self.pb
        execution = pb.Execution(
            type_id=self.execution_type_id, last_known_state=pb.Execution.RUNNING
        )
        props = execution.custom_properties
        for key, value in (
            ("display_name", task_name),
            ("task_name", task_name),
            ("image", image),
            ("pod_name", f"{task_name}-{uuid.uuid4().hex[:5]}"),
            ("namespace", NAMESPACE),
        ):
            props[key].string_value = value
        if fingerprint:
            props["cache_fingerprint"].string_value = fingerprint
        if cached_id is not None:
            props["cached_execution_id"].string_value = str(cached_id)
        if inputs:  # as client.go: only when there are any (MLMD aborts on an empty struct)
            props["inputs"].struct_value.update(inputs)
        with self._lock:
            execution_id, _, _ = self.store.put_execution(
                execution, [], [self.pipeline_context, self.run_context]
            )
            # Events naming existing artifacts by id, as client.go CreateExecution
            # does (an artifact in put_execution's pairs would be overwritten).
            self.store.put_events(
                [
                    _event(pb, pb.Event.INPUT, name, artifact_id, execution_id)
                    for name, ids in input_artifact_ids.items()
                    for artifact_id in ids
                ]
            )
        execution.id = execution_id
        return execution

    def finish_execution(
        self,
        execution,
        state,
        new_artifacts: dict[str, list],
        reused_artifacts: dict[str, list] | None = None,
    ):
        """Records the final state, new output artifacts ({key: [MLMD Artifact]}),
        and, for a cache hit, events to the cached execution's artifacts."""
        pb = self.pb
        execution.last_known_state = state
        pairs = [
            (artifact, _event(pb, pb.Event.OUTPUT, key))
            for key, artifacts in new_artifacts.items()
            for artifact in artifacts
        ]
        with self._lock:
            self.store.put_execution(execution, pairs, [self.pipeline_context, self.run_context])
            self.store.put_events(
                [
                    _event(pb, pb.Event.OUTPUT, key, artifact.id, execution.id)
                    for key, artifacts in (reused_artifacts or {}).items()
                    for artifact in artifacts
                ]
            )

    def artifact_type_id(self, schema: str) -> int:
        """metadata/client.go GetOrInsertArtifactType: the type named by the schema's title."""
        import yaml

        title = (yaml.safe_load(schema) or {}).get("title") if schema else None
        return self.store.put_artifact_type(self.pb.ArtifactType(name=title or "system.Artifact"))

    def outputs_of(self, execution_id: int) -> dict[str, list]:
        """GetOutputArtifactsByExecutionId: {output key: [MLMD Artifact]}."""
        pb = self.pb
        events = [
            e
            for e in self.store.get_events_by_execution_ids([execution_id])
            if e.type == pb.Event.OUTPUT
        ]
        artifacts = {
            a.id: a for a in self.store.get_artifacts_by_id([e.artifact_id for e in events])
        }
        outputs: dict[str, list] = {}
        for event in events:
            outputs.setdefault(event.path.steps[0].key, []).append(artifacts[event.artifact_id])
        return outputs


def _event(pb, kind, key: str, artifact_id: int | None = None, execution_id: int | None = None):
    event = pb.Event(type=kind, artifact_id=artifact_id, execution_id=execution_id)
    event.path.steps.add().key = key
    return event


def _to_runtime_artifact(artifact):
    """converter.go toRuntimeArtifact + client.go ToRuntimeArtifact (empty schema)."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    runtime = pipeline_spec_pb2.RuntimeArtifact(name=str(artifact.id), uri=artifact.uri)
    runtime.type.instance_schema = ""  # `Schema: "", // TODO(Bobgy): figure out how to get schema`
    for properties in (artifact.properties, artifact.custom_properties):
        for key, value in properties.items():
            kind = value.WhichOneof("value")
            if kind == "string_value":
                runtime.metadata[key] = value.string_value
            elif kind in ("int_value", "double_value"):
                runtime.metadata[key] = float(getattr(value, kind))
            elif kind == "struct_value":
                runtime.metadata.get_or_create_struct(key).CopyFrom(value.struct_value)
    return runtime


def _to_mlmd_artifact(pb, runtime, type_id: int):
    """converter.go toMLMDArtifact: RuntimeArtifact metadata -> custom properties."""
    artifact = pb.Artifact(type_id=type_id, uri=runtime.uri, state=pb.Artifact.LIVE)
    for key, value in runtime.metadata.items():
        if isinstance(value, str):
            artifact.custom_properties[key].string_value = value
        elif isinstance(value, bool):
            artifact.custom_properties[key].int_value = int(value)
        elif isinstance(value, (int, float)):
            artifact.custom_properties[key].double_value = float(value)
        else:  # lists and structs are wrapped, as StructValueToMLMDValue does
            wrapper = (
                "list" if isinstance(value, (list, tuple)) or hasattr(value, "append") else "struct"
            )
            artifact.custom_properties[key].struct_value.update({wrapper: _plain(value)})
    return artifact


def _plain(value):
    from google.protobuf import json_format, struct_pb2

    if isinstance(value, (struct_pb2.Struct, struct_pb2.ListValue)):
        return json_format.MessageToDict(value)
    return value


def _schema_text(artifact_type) -> str:
    """launcher_v2.go getArtifactSchema."""
    if artifact_type.WhichOneof("kind") == "schema_title":
        return "title: " + artifact_type.schema_title
    return artifact_type.instance_schema


def _placeholder_text(value) -> str:
    """launcher_v2.go getPlaceholders: how a parameter value is spelled in args."""
    from google.protobuf import json_format

    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        return str(int(number)) if number.is_integer() else repr(number)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    return json.dumps(json_format.MessageToDict(value), separators=(",", ":"))


def _compile_args(container, executor_input) -> list[str]:
    """launcher_v2.go compileCmdAndArgs."""
    from google.protobuf import json_format

    placeholders = {}
    for name, artifacts in executor_input.inputs.artifacts.items():
        if artifacts.artifacts:
            placeholders[f"{{{{$.inputs.artifacts['{name}'].uri}}}}"] = artifacts.artifacts[0].uri
    for name, artifacts in executor_input.outputs.artifacts.items():
        if artifacts.artifacts:
            placeholders[f"{{{{$.outputs.artifacts['{name}'].uri}}}}"] = artifacts.artifacts[0].uri
    for name, value in executor_input.inputs.parameter_values.items():
        placeholders[f"{{{{$.inputs.parameters['{name}']}}}}"] = _placeholder_text(value)
    invocation = json_format.MessageToJson(executor_input, indent=None)
    compiled = []
    for arg in list(container.command) + list(container.args):
        arg = arg.replace(EXECUTOR_INPUT_PLACEHOLDER, invocation)
        for placeholder, replacement in placeholders.items():
            arg = arg.replace(placeholder, replacement)
        compiled.append(arg)
    return compiled


def _fingerprint(executor_input, container) -> str:
    """cacheutils GenerateCacheKey + GenerateFingerPrint (the key's fields, hashed)."""
    from google.protobuf import json_format

    key = {
        "inputArtifactNames": {
            name: [a.name for a in artifacts.artifacts]
            for name, artifacts in executor_input.inputs.artifacts.items()
        },
        "inputParameterValues": {
            name: json_format.MessageToDict(value)
            for name, value in executor_input.inputs.parameter_values.items()
        },
        "outputArtifactsSpec": {
            name: {
                "name": artifacts.artifacts[0].name,
                "type": json_format.MessageToDict(artifacts.artifacts[0].type),
                "metadata": json_format.MessageToDict(artifacts.artifacts[0].metadata),
            }
            for name, artifacts in executor_input.outputs.artifacts.items()
            if artifacts.artifacts
        },
        "containerSpec": {
            "image": container.image,
            "cmdArgs": list(container.command) + list(container.args),
        },
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class _Run:
    def __init__(
        self,
        spec,
        root_values,
        run_id: str,
        run_root: str,
        metadata: _Metadata,
        cluster: kfp_pod.Cluster,
        echo: Callable[[str], None],
    ):
        self.spec, self.root_values, self.run_id = spec, root_values, run_id
        self.run_root, self.metadata, self.echo = run_root, metadata, echo
        self.cluster = cluster
        self.deployment = deployment_config(spec)
        self.results: dict[str, TaskResult] = {}
        self.skipped_hooks: list[str] = []

    def _parameter(self, task_name: str, name: str, parameter):
        """resolve.go resolveInputParameter."""
        from google.protobuf import json_format, struct_pb2

        kind = parameter.WhichOneof("kind")
        if kind == "runtime_value":
            constant = parameter.runtime_value.constant
            resolved = {
                "{{$.pipeline_job_name}}": self.run_id,
                "{{$.pipeline_job_resource_name}}": self.run_id,
                "{{$.pipeline_job_uuid}}": self.run_id,
                "{{$.pipeline_task_name}}": task_name,
            }.get(constant.string_value)
            return struct_pb2.Value(string_value=resolved) if resolved is not None else constant
        if kind == "component_input_parameter":
            value = struct_pb2.Value()
            json_format.Parse(
                json.dumps(self.root_values[parameter.component_input_parameter]), value
            )
            return value
        raise NotImplementedError(
            f"{task_name}.{name}: parameter source {kind} is not implemented in this stand-in"
        )

    def executor_input(self, task_name: str):
        from kfp.pipeline_spec import pipeline_spec_pb2

        task = self.spec.root.dag.tasks[task_name]
        component = self.spec.components[task.component_ref.name]
        executor_input = pipeline_spec_pb2.ExecutorInput()
        input_ids: dict[str, list[int]] = {}
        for name, parameter in task.inputs.parameters.items():
            executor_input.inputs.parameter_values[name].CopyFrom(
                self._parameter(task_name, name, parameter)
            )
        for name, artifact in task.inputs.artifacts.items():
            producer = artifact.task_output_artifact
            if not producer.producer_task:
                raise NotImplementedError(
                    f"{task_name}.{name}: only upstream task artifacts "
                    "are implemented in this stand-in"
                )
            upstream = self.results[producer.producer_task]
            # Read back from ML Metadata, as the driver does: no type schema.
            found = self.metadata.outputs_of(upstream.execution_id).get(
                producer.output_artifact_key, []
            )
            for mlmd_artifact in found:
                executor_input.inputs.artifacts[name].artifacts.append(
                    _to_runtime_artifact(mlmd_artifact)
                )
                input_ids.setdefault(name, []).append(mlmd_artifact.id)
        task_root = f"{self.run_root}/{task_name}"
        for name, definition in component.output_definitions.artifacts.items():
            runtime = executor_input.outputs.artifacts[name].artifacts.add()
            runtime.name = name
            runtime.uri = f"{task_root}/{name}"
            runtime.type.CopyFrom(definition.artifact_type)
        executor_input.outputs.output_file = kfp_pod.OUTPUT_FILE  # inside the pod
        return executor_input, input_ids

    def run_task(self, task_name: str) -> TaskResult:
        from google.protobuf import json_format
        from kfp.pipeline_spec import pipeline_spec_pb2

        pb = self.metadata.pb
        task = self.spec.root.dag.tasks[task_name]
        component = self.spec.components[task.component_ref.name]
        container = self.deployment.executors[component.executor_label].container
        if container.HasField("lifecycle"):
            self.skipped_hooks.append(task_name)
        executor_input, input_ids = self.executor_input(task_name)
        inputs = {
            name: json_format.MessageToDict(value)
            for name, value in executor_input.inputs.parameter_values.items()
        }

        fingerprint = ""
        if task.caching_options.enable_cache:
            fingerprint = _fingerprint(executor_input, container)
            cached = self.metadata.cached_execution(fingerprint)
            if cached is not None:
                execution = self.metadata.start_execution(
                    task_name, container.image, fingerprint, inputs, input_ids, cached.id
                )
                reused = self.metadata.outputs_of(cached.id)
                self.metadata.finish_execution(execution, pb.Execution.CACHED, {}, reused)
                self.echo(f"  = {task_name} cached by KFP (execution {cached.id})")
                return TaskResult(task_name, "CACHED", execution.id, {}, None)

        execution = self.metadata.start_execution(
            task_name, container.image, fingerprint, inputs, input_ids
        )
        task_dir = Path(self.run_root, task_name)
        task_dir.mkdir(parents=True, exist_ok=True)
        log_path = task_dir / "log.txt"
        outputs_dir = task_dir / "kfp_outputs"  # the pod's /tmp/kfp_outputs
        self.echo(f"  > {task_name} ...")
        started = time.monotonic()
        pod = kfp_pod.run(
            self.cluster,
            _compile_args(container, executor_input),
            outputs_dir,
            log_path,
            pod_name=f"{self.spec.pipeline_info.name}-{self.run_id[:8]}-{task_name}"[:63],
            memory_limit_gb=container.resources.memory_limit,
        )
        usage = f"peak {pod.peak_memory_gb:.2f} GB, {pod.cpu_seconds:.0f} CPU s"
        if pod.returncode != 0:
            self.metadata.finish_execution(execution, pb.Execution.FAILED, {})
            reason = "OOMKilled" if pod.oom_killed else f"exit {pod.returncode}"
            self.echo(f"  ! {task_name} FAILED ({reason}, {usage}); log {log_path}")
            return TaskResult(task_name, "FAILED", execution.id, {}, log_path, pod)

        executor_output = pipeline_spec_pb2.ExecutorOutput()
        output_file = outputs_dir / Path(kfp_pod.OUTPUT_FILE).name
        if output_file.exists():
            json_format.Parse(output_file.read_text(), executor_output, ignore_unknown_fields=True)
        recorded: dict[str, list] = {}
        outputs = {}
        for name, given in executor_input.outputs.artifacts.items():
            merged = pipeline_spec_pb2.ArtifactList()
            merged.CopyFrom(given)
            reported = executor_output.artifacts.get(name)
            for artifact, update in zip(
                merged.artifacts, reported.artifacts if reported else [], strict=False
            ):
                if update.uri:
                    artifact.uri = update.uri
                artifact.metadata.update(update.metadata)
            type_id = self.metadata.artifact_type_id(
                _schema_text(component.output_definitions.artifacts[name].artifact_type)
            )
            recorded[name] = [_to_mlmd_artifact(pb, a, type_id) for a in merged.artifacts]
            outputs[name] = merged
        self.metadata.finish_execution(execution, pb.Execution.COMPLETE, recorded)
        self.echo(f"  = {task_name} finished in {time.monotonic() - started:.1f}s ({usage})")
        return TaskResult(task_name, "COMPLETE", execution.id, outputs, log_path, pod)


def run(
    spec_path: Path,
    pipeline_root: Path,
    cluster: kfp_pod.Cluster,
    parameters: dict[str, str] | None = None,
    echo=print,
    max_parallel: int | None = None,
) -> RunResult:
    """Runs the pipeline YAML as KFP would, each task in a pod of `cluster`
    (standins/kfp_pod.py); returns each task's result.

    KFP records in the cluster's ML Metadata service (`cluster.metadata_grpc`),
    which the TFX node tasks use too. `pipeline_root` is a local folder for
    the task logs and each pod's output file.
    """
    from settings.metadata import grpc_connection

    spec = load_pipeline_spec(spec_path)
    check_executors(spec, deployment_config(spec))  # refused before anything runs
    order = task_order(spec)
    root_values = _root_parameters(spec, parameters or {})
    run_id = str(uuid.uuid4())
    run_root = f"{pipeline_root.resolve()}/{spec.pipeline_info.name}/{run_id}"
    metadata = _Metadata(
        grpc_connection(cluster.metadata_grpc), spec.pipeline_info.name, run_id, str(pipeline_root)
    )
    state = _Run(spec, root_values, run_id, run_root, metadata, cluster, echo)
    tasks = spec.root.dag.tasks
    pending = set(order)
    running: dict[futures.Future, str] = {}
    failed = None
    with futures.ThreadPoolExecutor(max_workers=max_parallel or len(order)) as pool:
        while pending or running:
            done_ok = {n for n, r in state.results.items() if r.state in ("COMPLETE", "CACHED")}
            if failed is None:
                for name in sorted(n for n in pending if set(tasks[n].dependent_tasks) <= done_ok):
                    pending.discard(name)
                    running[pool.submit(state.run_task, name)] = name
            if not running:
                break
            finished, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                state.results[running.pop(future)] = result
                if result.state == "FAILED" and failed is None:
                    failed = result.name
    return RunResult(run_id, state.results, sorted(state.skipped_hooks), failed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m standins.kfp_backend",
        description="Run a compiled KFP v2 pipeline YAML locally the way an open-source KFP "
        "2.x backend runs it (a development stand-in for a cluster).",
    )
    parser.add_argument("spec", type=Path, help="pipeline YAML from runners/kubeflow_runner.py")
    parser.add_argument(
        "--pipeline-root",
        type=Path,
        required=True,
        help="local folder for KFP-provisioned outputs and task logs",
    )
    parser.add_argument(
        "--metadata-grpc",
        required=True,
        metavar="HOST:PORT",
        help="ML Metadata gRPC service (python -m standins.mlmd_grpc_server)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="runtime parameter value (repeatable)",
    )
    parser.add_argument(
        "--object-store-env",
        type=Path,
        metavar="ENV_SH",
        help="give every pod the local object store (the env.sh scripts/object_store.sh "
        "writes): its settings, and its CA mounted as KFP mounts an admin's CA bundle",
    )
    parser.add_argument(
        "--pod-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable the cluster gives every task pod, such as a storage "
        "credential (repeatable); nothing else of this shell's environment reaches a task",
    )
    args = parser.parse_args(argv)
    parameters = dict(p.split("=", 1) for p in args.param)
    from standins import task_image

    settings = (
        kfp_pod.local_store_settings(args.object_store_env)
        if args.object_store_env
        else {"env": {}}
    )
    settings["env"].update(p.split("=", 1) for p in args.pod_env)
    cluster = kfp_pod.Cluster(
        image_python=task_image.build(), metadata_grpc=args.metadata_grpc, **settings
    )
    try:
        result = run(args.spec, args.pipeline_root, cluster, parameters)
    except Refused as error:
        print(f"error: KFP would refuse this pipeline: {error}", file=sys.stderr)
        return 1
    for task in result.skipped_hooks:
        print(f"note: {task}'s lifecycle hook was not run (KFP's backend never runs them)")
    if result.failed:
        print(
            f"error: run {result.run_id} failed at {result.failed}; log "
            f"{result.tasks[result.failed].log}",
            file=sys.stderr,
        )
        return 1
    print(f"run {result.run_id}: {len(result.tasks)} tasks succeeded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
