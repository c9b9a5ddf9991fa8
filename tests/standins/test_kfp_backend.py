"""The KFP stand-in behaves as the open-source KFP backend it cites, so a YAML
that fails on a cluster fails here: refusals, unrun lifecycle hooks, untyped
upstream artifacts, ML Metadata records and the task cache.

Small hand-written specs whose containers are one-line Python programs test
each behaviour, each task in a pod of its own (standins/kfp_pod.py: the task
image, an empty disk, a pod's environment, its memory limit). TFX's own v2
entrypoint (the design the project left) is shown to fail under it, where a
real cluster fails, in tests/runners/test_kfp_parity.py (it needs the spans
in a bucket).
"""

import json
import sys
from pathlib import Path

import pytest
import yaml
from ml_metadata.metadata_store import metadata_store

from runners import kubeflow_runner
from settings import metadata
from settings.configs import REPO_ROOT
from standins import kfp_backend, kfp_pod, mlmd_grpc_server, task_image
from tests.conftest import small_config


@pytest.fixture(scope="module")
def metadata_service(tmp_path_factory):
    """A gRPC ML Metadata service, as every KFP install runs one."""
    path = tmp_path_factory.mktemp("kfp_metadata") / "metadata.sqlite"
    with mlmd_grpc_server.sqlite_standin(str(path)) as server:
        yield server.address


@pytest.fixture(scope="module")
def cluster(metadata_service):
    """Task pods: the task image, the metadata service, nothing else."""
    return kfp_pod.Cluster(image_python=task_image.build(), metadata_grpc=metadata_service)


def _logs(root: Path, task: str) -> list[str]:
    """What each pod of `task` printed, one entry per pod that ran (a task's
    log is all the stand-in keeps of a pod; its disk is gone)."""
    return [log.read_text() for log in sorted(root.glob(f"*/*/{task}/log.txt"))]


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
    tmp_path, metadata_service, cluster
):
    config = small_config(
        tmp_path,
        kubeflow_target="vertex",
        kubeflow_output=str(tmp_path / "vertex.yaml"),
        kubeflow_image="test",
        **kubeflow_runner.CLUSTER_LOCATIONS,
    )
    path = kubeflow_runner.compile_pipeline(config)
    with pytest.raises(
        kfp_backend.Refused, match=r"non-container and non-importer executor not implemented"
    ):
        kfp_backend.run(path, tmp_path / "root", cluster)
    assert not any(c.name == "vertex" for c in _store(metadata_service).get_contexts())


def test_lifecycle_hooks_are_never_run(tmp_path, cluster):
    container = _python("print('task ran')")
    container["lifecycle"] = {"preCacheCheck": {"command": ["python", "-c", "print('hook ran')"]}}
    path = _write_spec(
        tmp_path / "hooks.yaml", {"task": {}}, {"exec-task": {"container": container}}
    )
    result = kfp_backend.run(path, tmp_path / "root", cluster)
    assert result.failed is None
    assert _logs(tmp_path / "root", "task") == ["task ran\n"]
    assert result.skipped_hooks == ["task"]


def test_upstream_artifacts_arrive_as_the_driver_builds_them(tmp_path, metadata_service, cluster):
    """Read back from ML Metadata: the type schema is empty, the name is the
    MLMD id, properties travel in `metadata`."""
    producer = _python(
        "import json, sys; e = json.loads(sys.argv[1]);"
        "out = e['outputs']['artifacts']['examples']['artifacts'][0];"
        "out['metadata'] = {'span': 2, 'split_names': '[\"train\"]'};"
        "open(e['outputs']['outputFile'], 'w').write(json.dumps("
        "{'artifacts': {'examples': {'artifacts': [out]}}}))",
        "{{$}}",
    )
    consumer = _python("import sys; print(sys.argv[1])", "{{$}}")
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
    result = kfp_backend.run(path, tmp_path / "root", cluster)
    assert result.failed is None
    (seen,) = _logs(tmp_path / "root", "consumer")
    (artifact,) = json.loads(seen)["inputs"]["artifacts"]["examples"]["artifacts"]
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
    tmp_path, cluster, with_run_id, enable_cache, expected_runs
):
    args = ["{{$.inputs.parameters['run_id']}}"] if with_run_id else []
    task = {"cachingOptions": {"enableCache": enable_cache}}
    inputs = None
    if with_run_id:
        task["inputs"] = {
            "parameters": {
                "run_id": {"runtimeValue": {"constant": kubeflow_runner.RUN_ID_PLACEHOLDER}}
            }
        }
        inputs = {"task": {"parameters": {"run_id": {"parameterType": "STRING"}}}}
    container = _python("print('ran')", *args)
    path = _write_spec(
        tmp_path / f"cache-{with_run_id}-{enable_cache}.yaml",
        {"task": task},
        {"exec-task": {"container": container}},
        inputs=inputs,
    )
    first = kfp_backend.run(path, tmp_path / "root", cluster)
    second = kfp_backend.run(path, tmp_path / "root", cluster)
    assert _logs(tmp_path / "root", "task") == ["ran\n"] * expected_runs
    assert first.tasks["task"].state == "COMPLETE"
    assert second.tasks["task"].state == ("CACHED" if expected_runs == 1 else "COMPLETE")


def test_a_failed_task_stops_its_downstream_tasks(tmp_path, cluster):
    path = _write_spec(
        tmp_path / "fails.yaml",
        {"first": {}, "second": {"dependentTasks": ["first"]}},
        {
            "exec-first": {"container": _python("raise SystemExit(3)")},
            "exec-second": {"container": _python("print('ran')")},
        },
    )
    result = kfp_backend.run(path, tmp_path / "root", cluster)
    assert result.failed == "first" and set(result.tasks) == {"first"}
    assert _logs(tmp_path / "root", "second") == []


def test_a_pod_sees_no_local_path_and_none_of_the_callers_environment(
    tmp_path, cluster, monkeypatch
):
    """What a task of a cluster cannot see: the compiling machine's files
    (here a file next to the test and the project checkout), its variables;
    what it writes to a local path is gone with its disk. It runs the
    installed project, with the variables every KFP pod gets."""
    local = tmp_path / "spans.csv"
    local.write_text("a local file\n")
    monkeypatch.setenv("CFPB_DATA_ROOT", str(tmp_path))
    script = (
        "import json, os, sys, runners;"
        "print(json.dumps({'local': os.path.exists(sys.argv[1]),"
        " 'checkout': os.path.isdir(sys.argv[2]) and os.listdir(sys.argv[2]), 'cwd': os.listdir('.'),"
        " 'project': runners.__file__, 'env': sorted(os.environ)}));"
        "os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True);"
        "open(sys.argv[1], 'w').write('written in the pod')"
    )
    path = _write_spec(
        tmp_path / "pod.yaml",
        {"task": {}},
        {"exec-task": {"container": _python(script, str(local), str(REPO_ROOT))}},
    )
    result = kfp_backend.run(path, tmp_path / "root", cluster)
    assert result.failed is None, result.tasks["task"].log.read_text()
    (log,) = _logs(tmp_path / "root", "task")
    seen = json.loads(log)
    assert seen["local"] is False and not seen["checkout"] and seen["cwd"] == []
    assert seen["project"].startswith(str(cluster.image_python.parents[1]))
    assert "CFPB_DATA_ROOT" not in seen["env"]
    assert {"KFP_POD_NAME", "METADATA_GRPC_SERVICE_HOST", "TF_USE_LEGACY_KERAS"} <= set(seen["env"])
    assert local.read_text() == "a local file\n"


def test_a_task_above_its_memory_limit_is_killed(tmp_path, cluster):
    grow = "b = bytearray(400 * 1000 * 1000); b[::4096] = b'x' * len(b[::4096]); print('done')"
    container = _python(grow)
    container["resources"] = {"memoryLimit": 0.2}
    path = _write_spec(tmp_path / "oom.yaml", {"task": {}}, {"exec-task": {"container": container}})
    result = kfp_backend.run(path, tmp_path / "root", cluster)
    assert result.failed == "task"
    assert result.tasks["task"].pod.oom_killed
    assert "OOMKilled" in result.tasks["task"].log.read_text()


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
