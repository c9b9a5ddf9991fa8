"""Kubeflow compilation: what the YAML asks a KFP backend to do, read with the KFP SDK.

The runs of the compiled YAML are in test_kfp_standin.py and test_kfp_parity.py.
"""

import dataclasses
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
    config = small_config(
        tmp_path,
        kubeflow_image=IMAGE,
        kubeflow_target=target,
        kubeflow_metadata_grpc=METADATA,
        kubeflow_output=str(tmp_path / f"{target}.yaml"),
        **overrides,
    )
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


@pytest.mark.parametrize("setting", ["pipeline_root", "data_root", "serving_model_dir"])
def test_minio_roots_are_refused_with_what_works(tmp_path, setting):
    with pytest.raises(ValueError, match=r"no minio:// scheme.*gs://.*s3://"):
        _compile(tmp_path, "oss", **{setting: "minio://mlpipeline/cfpb"})


def test_help_minio_refusal_and_default_output(tmp_path):
    result = subprocess.run(
        [sys.executable, "runners/kubeflow_runner.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--kubeflow-image" in result.stdout and "--kubeflow-metadata-grpc" in result.stdout
    refused = subprocess.run(
        [
            sys.executable,
            "runners/kubeflow_runner.py",
            "--pipeline-root",
            "minio://mlpipeline/x",
            "--kubeflow-output",
            str(tmp_path / "x.yaml"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "no minio:// scheme" in refused.stderr
    assert not (tmp_path / "x.yaml").exists()
    assert kubeflow_runner.output_path(small_config(tmp_path)).name == "cfpb-disputes.yaml"


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
