"""Kubeflow compilation: what the YAML asks a KFP backend to do, read with the KFP SDK.

The runs of the compiled YAML are in test_kfp_standin.py and test_kfp_parity.py.
"""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kfp import components as kfp_components

from pipeline import node_ids, pipeline
from runners import kubeflow_runner, node_launcher
from standins import kfp_backend
from tests.conftest import small_config

REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.example/cfpb-tfx-pipeline-task:test"
METADATA = "metadata.example:9090"


def _compile(tmp_path, target, **overrides):
    """Compiles for a cluster: every location in a bucket (compiling touches no
    bucket; the runs are in test_kfp_parity.py)."""
    values = dict(
        kubeflow_image=IMAGE,
        kubeflow_target=target,
        kubeflow_metadata_grpc=METADATA,
        kubeflow_output=str(tmp_path / f"{target}.yaml"),
        **kubeflow_runner.CLUSTER_LOCATIONS,
    )
    config = small_config(tmp_path, **{**values, **overrides})
    return config, kubeflow_runner.compile_pipeline(config)


def _node_edges(spec):
    """(upstream, downstream) pairs of TFX node ids, from the tasks' dependencies."""
    node_of = {name: task.task_info.name for name, task in spec.root.dag.tasks.items()}
    return {
        (node_of[upstream], node_of[name])
        for name, task in spec.root.dag.tasks.items()
        for upstream in task.dependent_tasks
    }


def _container_args(spec, task_name):
    task = spec.root.dag.tasks[task_name]
    label = spec.components[task.component_ref.name].executor_label
    return list(kfp_backend.deployment_config(spec).executors[label].container.args)


def _arg(args, flag):
    return args[args.index(flag) + 1]


@pytest.fixture(scope="module")
def oss(tmp_path_factory):
    config, path = _compile(tmp_path_factory.mktemp("kfp_oss"), "oss")
    return config, path, kfp_backend.load_pipeline_spec(path)  # strict proto parse


def test_yaml_loads_with_the_kfp_sdk(oss):
    _, path, spec = oss
    assert spec.schema_version == "2.1.0"
    component = kfp_components.load_component_from_file(str(path))
    assert component.name == "cfpb-disputes"
    assert set(component.component_spec.inputs) == {"data_root", "train_args"}


def test_oss_graph_is_the_full_beam_graph(oss):
    config, _, spec = oss
    expected = pipeline.create_pipeline(config)
    assert {t.task_info.name for t in spec.root.dag.tasks.values()} == set(
        pipeline.component_ids(expected)
    )
    assert _node_edges(spec) == pipeline.component_edges(expected)
    # Both resolvers are there, as node tasks KFP can run.
    assert {node_ids.BASELINE_RESOLVER, node_ids.STATISTICS_RESOLVER} <= {
        t.task_info.name for t in spec.root.dag.tasks.values()
    }


def test_oss_uses_only_what_the_kfp_backend_executes(oss):
    _, _, spec = oss
    deployment = kfp_backend.deployment_config(spec)
    kfp_backend.check_executors(spec, deployment)
    for executor in deployment.executors.values():
        assert executor.WhichOneof("spec") == "container"
        assert not executor.container.HasField("lifecycle")
        assert list(executor.container.command) == kubeflow_runner.NODE_LAUNCHER
        assert executor.container.image == IMAGE


def test_every_task_runs_its_own_node_against_the_configured_store(oss):
    _, _, spec = oss
    for name, task in spec.root.dag.tasks.items():
        args = _container_args(spec, name)
        node_ir = node_launcher.decode_ir(_arg(args, "--pipeline-ir"))
        assert [n.pipeline_node.node_info.id for n in node_ir.nodes] == [task.task_info.name]
        assert _arg(args, "--node-id") == task.task_info.name
        assert _arg(args, "--metadata-grpc") == METADATA
        assert _arg(args, "--run-id") == "{{$.inputs.parameters['run_id']}}"
        constant = task.inputs.parameters["run_id"].runtime_value.constant.string_value
        assert constant == kubeflow_runner.RUN_ID_PLACEHOLDER


def test_kfp_cache_is_off_on_every_task(oss):
    """Each task's answer depends on ML Metadata state that is not a KFP input."""
    _, _, spec = oss
    assert not any(t.caching_options.enable_cache for t in spec.root.dag.tasks.values())


def test_the_span_is_not_fixed_at_compile_time(oss):
    config, path, spec = oss
    parameters = yaml.safe_load(path.read_text())["root"]["inputDefinitions"]["parameters"]
    assert parameters["data_root"]["defaultValue"] == config.data_root  # the spans, not one
    assert parameters["train_args"]["defaultValue"] == f'{{"num_steps": {config.train_steps}}}'
    assert all(p["isOptional"] for p in parameters.values())
    (task_name,) = [
        n for n, t in spec.root.dag.tasks.items() if t.task_info.name == "CsvExampleGen"
    ]
    node = node_launcher.decode_ir(_arg(_container_args(spec, task_name), "--pipeline-ir"))
    text = str(node)
    assert "span-{SPAN}/*.csv" in text and "static_range" not in text


def test_vertex_leaves_out_the_drift_resolver_and_refuses_drift_blocks(tmp_path):
    config, path = _compile(tmp_path, "vertex")
    spec = kfp_backend.load_pipeline_spec(path)
    names = set(spec.root.dag.tasks)
    assert not any(n.startswith(node_ids.STATISTICS_RESOLVER) for n in names)
    assert any(n.startswith(node_ids.BASELINE_RESOLVER) for n in names)
    expected = pipeline.create_pipeline(config, project_resolvers=False)
    assert node_ids.STATISTICS_RESOLVER not in pipeline.component_ids(expected)
    with pytest.raises(ValueError, match="drift baseline"):
        _compile(tmp_path, "vertex", drift_blocks=True)


@pytest.mark.parametrize("setting", sorted(kubeflow_runner.CLUSTER_LOCATIONS))
def test_minio_and_s3_roots_are_refused_with_what_works(tmp_path, setting):
    with pytest.raises(ValueError, match=r"no minio:// scheme.*use a gs:// bucket"):
        _compile(tmp_path, "oss", **{setting: "minio://mlpipeline/cfpb"})
    with pytest.raises(ValueError, match=r"s3:// through tensorflow-io.*use a gs:// bucket"):
        _compile(tmp_path, "vertex", **{setting: "s3://mlpipeline/cfpb"})


def _compile_command(tmp_path, *flags):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CFPB_")}
    return subprocess.run(
        [sys.executable, "runners/kubeflow_runner.py", *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )


def test_compiling_with_defaults_names_every_setting_a_cluster_needs(tmp_path):
    """The defaults are local folders and no image: refused in one message that
    names each setting with an example, and no YAML is written."""
    output = tmp_path / "x.yaml"
    refused = _compile_command(tmp_path, "--kubeflow-output", str(output))
    assert refused.returncode == 2, refused.stderr
    message = refused.stderr
    assert "cannot compile for a cluster" in message and "Traceback" not in message
    for flag, example in (
        ("--pipeline-root", "gs://BUCKET/pipeline_root"),
        ("--data-root", "gs://BUCKET/spans"),
        ("--serving-model-dir", "gs://BUCKET/serving_model"),
        ("--kubeflow-image", "REGISTRY/cfpb-tfx-pipeline-task:TAG"),
    ):
        line = next(line for line in message.splitlines() if line.strip().startswith(flag))
        assert example in line, line
    assert not output.exists()
    # One location fixed: the others are still named.
    partly = _compile_command(
        tmp_path, "--kubeflow-output", str(output), "--pipeline-root", "gs://b/root"
    )
    named = partly.stderr.split("cannot compile for a cluster:", 1)[1]
    assert partly.returncode == 2 and "--pipeline-root" not in named
    assert "--data-root" in named and not output.exists()


def test_help_and_default_output(tmp_path):
    result = _compile_command(tmp_path, "--help")
    assert result.returncode == 0
    for flag in ("--kubeflow-image", "--kubeflow-metadata-grpc", "--kubeflow-task-memory-gb"):
        assert flag in result.stdout
    assert kubeflow_runner.output_path(small_config(tmp_path)).name == "cfpb-disputes.yaml"


def test_every_task_declares_cpu_and_memory(tmp_path):
    _, path = _compile(tmp_path, "oss", kubeflow_task_cpu=2.0, kubeflow_task_memory_gb=6.5)
    _, vertex = _compile(tmp_path, "vertex", kubeflow_output=str(tmp_path / "v.yaml"))
    for compiled, cpu, memory in ((path, 2.0, 6.5), (vertex, 1.0, 4.0)):
        spec = kfp_backend.load_pipeline_spec(compiled)
        for executor in kfp_backend.deployment_config(spec).executors.values():
            if executor.WhichOneof("spec") != "container":
                continue  # (vertex's importer)
            resources = executor.container.resources
            assert (resources.cpu_request, resources.memory_request) == (cpu, memory)
            assert resources.memory_limit == memory


def test_without_a_metadata_setting_tasks_use_the_service_kfp_names(tmp_path):
    """Unset, the YAML names no address: each task reads the pod's
    METADATA_GRPC_SERVICE_HOST/_PORT (KFP's metadata-grpc-configmap)."""
    _, path = _compile(tmp_path, "oss", kubeflow_metadata_grpc=None)
    spec = kfp_backend.load_pipeline_spec(path)
    for name in spec.root.dag.tasks:
        assert "--metadata-grpc" not in _container_args(spec, name)
    assert (
        node_launcher.kfp_metadata_address(
            {
                "METADATA_GRPC_SERVICE_HOST": "metadata-grpc-service.kubeflow",
                "METADATA_GRPC_SERVICE_PORT": "8080",
            }
        )
        == "metadata-grpc-service.kubeflow:8080"
    )
    assert node_launcher.kfp_metadata_address({}) is None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CFPB_", "METADATA_GRPC"))}
    nowhere = subprocess.run(
        [
            sys.executable,
            "-m",
            "runners.node_launcher",
            "--pipeline-ir",
            "x",
            "--node-id",
            "Trainer",
            "--run-id",
            "r",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert nowhere.returncode == 2 and "METADATA_GRPC_SERVICE_HOST" in nowhere.stderr


def test_node_launcher_help_and_bad_run_id(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "runners.node_launcher", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--metadata-grpc" in result.stdout
    with pytest.raises(ValueError, match="older than 2.5"):
        node_launcher.launch(None, "Trainer", "{{$.pipeline_job_uuid}}", None)


def test_task_lock_is_a_subset_of_the_development_lock():
    """The image runs the versions the tests ran: same pins, fewer packages."""

    def pins(name):
        return dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", (REPO / name).read_text(), re.M))

    task, development = pins("requirements-task.lock"), pins("requirements.lock")
    assert {"tfx", "tensorflow", "apache-beam", "tf-keras"} <= set(task)
    assert {
        name: version for name, version in task.items() if development.get(name) != version
    } == {}
    # (jupyterlab and scikit-learn stay: TFMA's ipywidgets and TFX itself require them.)
    assert not {"apache-airflow", "kfp", "pytest", "psycopg2-binary"} & set(task)


def test_only_runtime_parameters_change_per_run(oss):
    """Compiling twice gives the same YAML: nothing run-specific is baked in."""
    config, path, _ = oss
    again = dataclasses.replace(config, kubeflow_output=str(path.with_name("again.yaml")))
    assert kubeflow_runner.compile_pipeline(again).read_text() == path.read_text()


def test_beam_components_tasks_carry_the_flink_options_and_check_the_job_server(tmp_path):
    """--beam-runner=flink reaches every Beam component's pod through its node's
    executor spec, and the check node_launcher runs first refuses a job server
    that does not answer (docs/flink.md)."""
    import socket

    from tfx.orchestration.local import runner_utils

    from settings import beam

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{probe.getsockname()[1]}"
    config, path = _compile(tmp_path, "oss", beam_runner="flink", beam_job_endpoint=endpoint)
    spec = kfp_backend.load_pipeline_spec(path)
    carried = {}
    for name, task in spec.root.dag.tasks.items():
        node_ir = node_launcher.decode_ir(_arg(_container_args(spec, name), "--pipeline-ir"))
        deployment = runner_utils.extract_local_deployment_config(node_ir)
        executor = runner_utils.extract_executor_spec(deployment, task.task_info.name)
        args = list(getattr(executor, "beam_pipeline_args", ()))
        if args:
            carried[task.task_info.name] = args
    beam_nodes = {node_ids.EXAMPLE_GEN, node_ids.STATISTICS_GEN, node_ids.TRANSFORM}
    assert beam_nodes | {node_ids.EVALUATOR} <= carried.keys()
    for args in carried.values():
        assert args == beam.pipeline_args(config)
        with pytest.raises(beam.EngineUnreachable, match=endpoint):
            beam.check_reachable(args)
