from pathlib import Path

import pytest
from tfx.types import standard_artifacts

from components import curated_schema
from data import schema


def test_an_edited_schema_file_is_a_new_cache_key(tmp_path):
    path = tmp_path / "schema.pbtxt"
    path.write_text(schema.SCHEMA_PATH.read_text())
    before = curated_schema.ImportSchemaGen(schema_file=str(path))
    path.write_text(
        path.read_text().replace('value: "Mortgage"', 'value: "Mortgage"\n  value: "Consumer Loan"')
    )
    after = curated_schema.ImportSchemaGen(schema_file=str(path))

    assert before.exec_properties["schema_file"] == after.exec_properties["schema_file"]
    assert (
        before.exec_properties[curated_schema.SCHEMA_SHA256_KEY]
        != after.exec_properties[curated_schema.SCHEMA_SHA256_KEY]
    )
    assert before.id == "ImportSchemaGen"  # node ids and history read as before


def test_tfx_s_executor_still_copies_the_file(tmp_path):
    component = curated_schema.ImportSchemaGen(schema_file=str(schema.SCHEMA_PATH))
    output = standard_artifacts.Schema()
    output.uri = str(tmp_path / "out")
    Path(output.uri).mkdir()
    executor = component.executor_spec.executor_class()
    executor.Do({}, {"schema": [output]}, dict(component.exec_properties))
    assert (tmp_path / "out" / "schema.pbtxt").read_text() == schema.SCHEMA_PATH.read_text()


def test_a_compiled_node_refuses_a_schema_file_edited_after_compiling(tmp_path):
    """What the node launcher checks before each Airflow or Kubeflow task: the
    compiled IR carries the file's hash from compile time, and the cache would
    otherwise answer with the old schema."""
    from tfx.dsl.compiler import compiler

    from pipeline import pipeline
    from tests.conftest import small_config

    path = tmp_path / "schema.pbtxt"
    path.write_text(schema.SCHEMA_PATH.read_text())
    config = small_config(tmp_path, schema_path=str(path))
    pipeline_ir = compiler.Compiler().compile(pipeline.create_pipeline(config))
    nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in pipeline_ir.nodes}

    curated_schema.check_unchanged(nodes["ImportSchemaGen"])
    path.write_text(
        path.read_text().replace('value: "Mortgage"', 'value: "Mortgage"\n  value: "Consumer Loan"')
    )
    with pytest.raises(ValueError, match="changed after the pipeline was compiled"):
        curated_schema.check_unchanged(nodes["ImportSchemaGen"])
    curated_schema.check_unchanged(nodes["Trainer"])  # other nodes: nothing to check


def test_a_compiled_relative_schema_path_is_inside_the_project_not_the_cwd(tmp_path, monkeypatch):
    """How Kubeflow compiles the curated schema: the task image has the project
    wherever pip installed it, and its working directory holds no copy. Both
    the launcher's check and the executor (which TFX's own entrypoint runs on
    Vertex) read the project's file."""
    from tfx.dsl.compiler import compiler
    from tfx.types import standard_component_specs

    from pipeline import pipeline
    from settings.configs import REPO_ROOT
    from tests.conftest import small_config

    relative = curated_schema.project_relative(str(schema.SCHEMA_PATH))
    assert relative == "data/curated_schema.pbtxt"
    assert curated_schema.project_relative(str(tmp_path / "schema.pbtxt")) == str(
        tmp_path / "schema.pbtxt"
    )  # outside the project: left as it is
    monkeypatch.chdir(tmp_path)  # nothing named data/ here
    config = small_config(tmp_path, schema_path=relative)
    pipeline_ir = compiler.Compiler().compile(pipeline.create_pipeline(config))
    (node,) = [
        n.pipeline_node
        for n in pipeline_ir.nodes
        if n.pipeline_node.node_info.id == "ImportSchemaGen"
    ]

    curated_schema.check_unchanged(node)  # finds and hashes the project's file

    assert curated_schema.resolve(relative) == str(REPO_ROOT / relative)
    output = standard_artifacts.Schema()
    output.uri = str(tmp_path / "out")
    Path(output.uri).mkdir()
    executor = curated_schema.ImportSchemaGen(relative).executor_spec.executor_class()
    executor.Do({}, {"schema": [output]}, {standard_component_specs.SCHEMA_FILE_KEY: relative})
    assert (tmp_path / "out" / "schema.pbtxt").read_text() == schema.SCHEMA_PATH.read_text()
