"""The KFP stand-in behaves as the open-source KFP backend it cites, so a YAML
that fails on a cluster fails here: refusals, unrun lifecycle hooks, untyped
upstream artifacts, ML Metadata records and the task cache.

Small hand-written specs whose containers are one-line Python programs test
each behaviour; TFX's own v2 entrypoint (the design the project left) is then
shown to fail under it, where a real cluster fails.
"""

import json
import sys
from pathlib import Path

import pytest
import yaml
from ml_metadata.metadata_store import metadata_store

from data import prepare
from runners import kubeflow_runner
from settings import metadata
from standins import kfp_backend, mlmd_grpc_server
from tests.conftest import SPAN_2015, small_config


@pytest.fixture(scope="module")
def metadata_service(tmp_path_factory):
    """A gRPC ML Metadata service, as every KFP install runs one."""
    path = tmp_path_factory.mktemp("kfp_metadata") / "metadata.sqlite"
    with mlmd_grpc_server.sqlite_standin(str(path)) as server:
        yield server.address


def _store(address):
    return metadata_store.MetadataStore(metadata.grpc_connection(address))


def _write_spec(path: Path, tasks: dict, executors: dict, outputs=None, inputs=None) -> Path:
    """A minimal PipelineSpec: one component and executor per task."""
    components = {}
    for name in tasks:
        component = {"executorLabel": f"exec-{name}"}
        if outputs and name in outputs:
            component["outputDefinitions"] = {"artifacts": outputs[name]}
        if inputs and name in inputs:
            component["inputDefinitions"] = inputs[name]
        components[f"comp-{name}"] = component
        tasks[name].setdefault("componentRef", {"name": f"comp-{name}"})
        tasks[name].setdefault("taskInfo", {"name": name})
    spec = {
        "pipelineInfo": {"name": path.stem},
        "schemaVersion": "2.1.0",
        "sdkVersion": "test",
        "components": components,
        "deploymentSpec": {"executors": executors},
        "root": {"dag": {"tasks": tasks}},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def _python(script: str, *args: str) -> dict:
    return {"image": "test", "command": ["python", "-c", script], "args": list(args)}


def test_resolver_executors_are_refused_with_kfps_text_before_anything_runs(
    tmp_path, metadata_service
):
    config = small_config(
        tmp_path, kubeflow_target="vertex", kubeflow_output=str(tmp_path / "vertex.yaml")
    )
    path = kubeflow_runner.compile_pipeline(config)
    with pytest.raises(
        kfp_backend.Refused, match=r"non-container and non-importer executor not implemented"
    ):
        kfp_backend.run(path, tmp_path / "root", metadata_service)
    assert not any(c.name == "vertex" for c in _store(metadata_service).get_contexts())


def test_lifecycle_hooks_are_never_run(tmp_path, metadata_service):
    hook, ran = tmp_path / "hook-ran", tmp_path / "task-ran"
    touch = "import pathlib, sys; pathlib.Path(sys.argv[1]).touch()"
    container = _python(touch, str(ran))
    container["lifecycle"] = {
        "preCacheCheck": {"command": ["python", "-c", touch], "args": [str(hook)]}
    }
    path = _write_spec(
        tmp_path / "hooks.yaml", {"task": {}}, {"exec-task": {"container": container}}
    )
    result = kfp_backend.run(path, tmp_path / "root", metadata_service)
    assert result.failed is None and ran.exists()
    assert not hook.exists()
    assert result.skipped_hooks == ["task"]


def test_upstream_artifacts_arrive_as_the_driver_builds_them(tmp_path, metadata_service):
    """Read back from ML Metadata: the type schema is empty, the name is the
    MLMD id, properties travel in `metadata`."""
    seen = tmp_path / "executor_input.json"
    producer = _python(
        "import json, sys; e = json.loads(sys.argv[1]);"
        "out = e['outputs']['artifacts']['examples']['artifacts'][0];"
        "out['metadata'] = {'span': 2, 'split_names': '[\"train\"]'};"
        "open(e['outputs']['outputFile'], 'w').write(json.dumps("
        "{'artifacts': {'examples': {'artifacts': [out]}}}))",
        "{{$}}",
    )
    consumer = _python("import sys; open(sys.argv[2], 'w').write(sys.argv[1])", "{{$}}", str(seen))
    tasks = {
        "producer": {},
        "consumer": {
            "dependentTasks": ["producer"],
            "inputs": {
                "artifacts": {
                    "examples": {
                        "taskOutputArtifact": {
                            "producerTask": "producer",
                            "outputArtifactKey": "examples",
                        }
                    }
                }
            },
        },
    }
    path = _write_spec(
        tmp_path / "artifacts.yaml",
        tasks,
        {"exec-producer": {"container": producer}, "exec-consumer": {"container": consumer}},
        outputs={"producer": {"examples": {"artifactType": {"schemaTitle": "tfx.Examples"}}}},
        inputs={
            "consumer": {
                "artifacts": {"examples": {"artifactType": {"schemaTitle": "tfx.Examples"}}}
            }
        },
    )
    result = kfp_backend.run(path, tmp_path / "root", metadata_service)
    assert result.failed is None
    (artifact,) = json.loads(seen.read_text())["inputs"]["artifacts"]["examples"]["artifacts"]
    assert artifact["type"] == {"instanceSchema": ""}
    assert artifact["metadata"] == {"span": 2.0, "split_names": '["train"]'}
    store = _store(metadata_service)
    (recorded,) = store.get_artifacts_by_type("tfx.Examples")
    assert artifact["name"] == str(recorded.id)
    assert recorded.custom_properties["span"].double_value == 2.0
    executions = {
        e.custom_properties["task_name"].string_value: e
        for e in store.get_executions_by_context(
            store.get_context_by_type_and_name("system.PipelineRun", result.run_id).id
        )
    }
    assert set(executions) == {"producer", "consumer"}
    assert all(e.last_known_state == e.COMPLETE for e in executions.values())


@pytest.mark.parametrize(
    "with_run_id, enable_cache, expected_runs",
    [
        (False, True, 1),  # same key: the second run is answered from KFP's cache
        (False, False, 2),  # cache off: both run
        (True, True, 2),  # the run id is a resolved input, so the key differs per run
    ],
)
def test_kfp_cache_follows_the_caching_options(
    tmp_path, metadata_service, with_run_id, enable_cache, expected_runs
):
    counter = tmp_path / "runs"
    args = [str(counter)] + (["{{$.inputs.parameters['run_id']}}"] if with_run_id else [])
    task = {"cachingOptions": {"enableCache": enable_cache}}
    inputs = None
    if with_run_id:
        task["inputs"] = {
            "parameters": {
                "run_id": {"runtimeValue": {"constant": kubeflow_runner.RUN_ID_PLACEHOLDER}}
            }
        }
        inputs = {"task": {"parameters": {"run_id": {"parameterType": "STRING"}}}}
    container = _python("import sys; open(sys.argv[1], 'a').write('ran\\n')", *args)
    path = _write_spec(
        tmp_path / f"cache-{with_run_id}-{enable_cache}.yaml",
        {"task": task},
        {"exec-task": {"container": container}},
        inputs=inputs,
    )
    first = kfp_backend.run(path, tmp_path / "root", metadata_service)
    second = kfp_backend.run(path, tmp_path / "root", metadata_service)
    assert len(counter.read_text().splitlines()) == expected_runs
    assert first.tasks["task"].state == "COMPLETE"
    assert second.tasks["task"].state == ("CACHED" if expected_runs == 1 else "COMPLETE")


def test_a_failed_task_stops_its_downstream_tasks(tmp_path, metadata_service):
    marker = tmp_path / "downstream-ran"
    path = _write_spec(
        tmp_path / "fails.yaml",
        {"first": {}, "second": {"dependentTasks": ["first"]}},
        {
            "exec-first": {"container": _python("raise SystemExit(3)")},
            "exec-second": {
                "container": _python(
                    "import pathlib, sys; pathlib.Path(sys.argv[1]).touch()", str(marker)
                )
            },
        },
    )
    result = kfp_backend.run(path, tmp_path / "root", metadata_service)
    assert result.failed == "first" and set(result.tasks) == {"first"}
    assert not marker.exists()


def test_cli_help_and_refusal(tmp_path, metadata_service):
    import subprocess

    from settings.configs import REPO_ROOT

    result = subprocess.run(
        [sys.executable, "-m", "standins.kfp_backend", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--metadata-grpc" in result.stdout
    assert (
        "--metadata-path"
        in subprocess.run(
            [sys.executable, "-m", "standins.mlmd_grpc_server", "--help"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


@pytest.mark.e2e
@pytest.mark.parametrize(
    "input_pattern, failing_task, error",
    [
        # ExampleGen's span driver is TFX's lifecycle hook: KFP never runs it.
        ("span-{SPAN}/*.csv", "CsvExampleGen", "span-{SPAN}/*.csv does not match any files"),
        # Past ExampleGen, the driver hands Examples over with an empty type schema.
        (
            f"span-{SPAN_2015}/*.csv",
            "StatisticsGen",
            "AttributeError: 'NoneType' object has no attribute 'get'",
        ),
    ],
)
def test_tfx_v2_entrypoint_fails_under_the_standin_where_a_cluster_fails(
    tmp_path, metadata_service, input_pattern, failing_task, error
):
    """TFX's own KFP v2 spec without resolvers (container tasks only)."""
    config = small_config(
        tmp_path,
        kubeflow_target="vertex",
        compare_with_baseline=False,
        input_pattern=input_pattern,
        kubeflow_output=str(tmp_path / "v2.yaml"),
        max_rows_per_span=500,
    )
    prepare.prepare_all(prepare.RAW_DIR, Path(config.data_root), config.max_rows_per_span)
    path = kubeflow_runner.compile_pipeline(config)
    result = kfp_backend.run(path, tmp_path / "root", metadata_service)
    assert result.failed == failing_task
    assert error in result.tasks[failing_task].log.read_text()
    assert "CsvExampleGen" in result.skipped_hooks
