"""Kubeflow V2 compilation: the YAML loads with the KFP SDK, matches the Beam
graph, uses the configured image, exposes runtime parameters, and runs."""
import dataclasses
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from kfp import components as kfp_components

from pipeline import pipeline
from runners import kfp_local_launcher, kubeflow_runner
from tests.conftest import small_config

REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.example/cfpb-tfx-pipeline:test"


def _compile(tmp_path, target, **overrides):
    config = small_config(tmp_path, kubeflow_image=IMAGE, kubeflow_target=target,
                          kubeflow_output=str(tmp_path / f"{target}.yaml"), **overrides)
    return config, kubeflow_runner.compile_pipeline(config)


def _task_edges(spec):
    """(upstream, downstream) task pairs, each resolver's two KFP tasks folded
    back into the one TFX node they come from."""
    def node(task_name):
        for resolver_id in (pipeline.RESOLVER_ID, pipeline.STATISTICS_RESOLVER_ID):
            if task_name.startswith(resolver_id + "-"):
                return resolver_id
        return task_name
    return {(node(upstream), node(name)) for name, task in spec.root.dag.tasks.items()
            for upstream in task.dependent_tasks if node(upstream) != node(name)}


@pytest.fixture(scope="module")
def oss(tmp_path_factory):
    return _compile(tmp_path_factory.mktemp("kfp_oss"), "oss")


def test_yaml_loads_with_the_kfp_sdk(oss):
    _, path = oss
    spec = kfp_local_launcher.load_pipeline_spec(path)  # strict proto parse
    assert spec.schema_version == "2.1.0"
    component = kfp_components.load_component_from_file(str(path))
    assert component.name == "cfpb-disputes"
    assert set(component.component_spec.inputs) == {"data_root", "train_args"}


def test_oss_graph_is_the_beam_graph_without_the_resolver(oss):
    config, path = oss
    spec = kfp_local_launcher.load_pipeline_spec(path)
    expected = pipeline.create_pipeline(dataclasses.replace(config, compare_with_baseline=False))
    assert set(spec.root.dag.tasks) == set(pipeline.component_ids(expected))
    assert _task_edges(spec) == pipeline.component_edges(expected)
    # Only containers: open-source KFP v2 runs no resolver executors.
    assert all(e.HasField("container") for e in kfp_local_launcher.deployment_config(spec).executors.values())


def test_vertex_graph_is_the_full_beam_graph(tmp_path):
    config, path = _compile(tmp_path, "vertex")
    spec = kfp_local_launcher.load_pipeline_spec(path)
    assert _task_edges(spec) == pipeline.component_edges(pipeline.create_pipeline(config))
    assert any(e.HasField("resolver") for e in kfp_local_launcher.deployment_config(spec).executors.values())


def test_every_task_runs_the_configured_image(oss):
    _, path = oss
    spec = kfp_local_launcher.load_pipeline_spec(path)
    images = {e.container.image for e in kfp_local_launcher.deployment_config(spec).executors.values()}
    assert images == {IMAGE}


def test_runtime_parameters_have_defaults(oss):
    config, path = oss
    parameters = yaml.safe_load(path.read_text())["root"]["inputDefinitions"]["parameters"]
    assert parameters["train_args"]["defaultValue"] == '{"num_steps": %d}' % config.train_steps
    assert parameters["data_root"]["defaultValue"].endswith("/span-2")
    assert all(p["isOptional"] for p in parameters.values())


def test_help_and_default_output(tmp_path):
    result = subprocess.run([sys.executable, "runners/kubeflow_runner.py", "--help"], cwd=REPO,
                            capture_output=True, text=True, check=True)
    assert "--kubeflow-image" in result.stdout and "--kubeflow-target" in result.stdout
    assert kubeflow_runner.output_path(small_config(tmp_path)).name == "cfpb-disputes.yaml"


def test_dockerfile_installs_every_package_the_project_ships(tmp_path):
    dockerfile = (REPO / "Dockerfile").read_text()
    packages = re.search(r"packages=\[([^\]]*)\]", (REPO / "setup.py").read_text()).group(1)
    for package in re.findall(r'"(\w+)"', packages):
        assert f"COPY {package} ./{package}" in dockerfile, package
    assert "requirements.lock" in dockerfile and "TF_USE_LEGACY_KERAS=1" in dockerfile
    # What `pip install .` in the image installs: the modules and the bundled data.
    # Built from a copy of what the Dockerfile copies: setuptools writes into the tree.
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(REPO / "setup.py", source)
    for package in re.findall(r'"(\w+)"', packages):
        shutil.copytree(REPO / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                    str(source)], check=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("models/preprocessing.py", "components/idempotent_pusher.py",
                   "pipeline/pipeline.py", "data/raw/complaints_2015-01_2015-03.csv.gz"):
        assert module in names


@pytest.mark.e2e
def test_compiled_yaml_runs_task_by_task_and_pushes_a_model(tmp_path):
    from data import prepare
    config = small_config(tmp_path)
    prepare.prepare_all(prepare.RAW_DIR, Path(config.data_root), config.max_rows_per_span)
    _, path = _compile(tmp_path, "oss", train_steps=1)

    # The runtime parameter overrides the compiled default (1 step) per run.
    lines = []
    outputs = kfp_local_launcher.run(
        path, tmp_path / "kfp_local", {"train_args": '{"num_steps": %d}' % config.train_steps},
        echo=lines.append)

    assert [line for line in lines if line.startswith("  = ")][-1].startswith("  = Pusher")
    blessing = outputs["Evaluator"]["blessing"].artifacts[0]
    assert blessing.metadata["blessed"] == 1
    pushed = outputs["Pusher"]["pushed_model"].artifacts[0]
    assert pushed.metadata["pushed"] == 1
    version_dir = Path(pushed.metadata["pushed_destination"])
    assert version_dir.parent == Path(config.serving_model_dir) / config.model_name
    assert (version_dir / "saved_model.pb").is_file()


def test_resolver_specs_are_refused_like_open_source_kfp_does(tmp_path):
    _, path = _compile(tmp_path, "vertex")
    with pytest.raises(kfp_local_launcher.UnsupportedSpec, match="resolver executors"):
        kfp_local_launcher.run(path, tmp_path / "kfp_local")
