"""TFX's ImportSchemaGen, with the schema file's content in its cache key.

ImportSchemaGen's only parameter is the file's path, and TFX's cache keys on
parameters and inputs: after the schema file is edited (`python -m data.schema
accept`, a reviewed commit) the path is the same, so the next run reused the
old schema artifact and refused the accepted span again. This component is the
same component with one more parameter, the file's SHA-256, read when the
pipeline is built; TFX's executor ignores it and copies the file as before. It
keeps the class name, so node ids, Airflow task ids and ML Metadata history
read "ImportSchemaGen" as before.

A compiled pipeline (Kubeflow YAML, Airflow's compiled IR) carries the hash
of the file at compile time; `check_unchanged` refuses to launch the node
when the file has changed since, instead of letting the cache answer with
the old schema.

Where the file is: a relative `schema_file` names a file inside the installed
project (the folder holding its packages: the checkout, or site-packages after
a non-editable install, where the curated schema is package data), never the
current directory. Kubeflow compiles the curated schema that way, because the
task image has the project wherever pip installed it. The executor resolves
the path, so the rule holds wherever the node runs: the Beam and Airflow runs,
the node launcher of every KFP task, and TFX's own entrypoint on Vertex.
"""

import hashlib
import os

from tfx import types
from tfx.components.schema_gen.import_schema_gen import component
from tfx.components.schema_gen.import_schema_gen import executor as import_schema_gen_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

SCHEMA_SHA256_KEY = "schema_sha256"


class CuratedSchemaSpec(standard_component_specs.ImportSchemaGenSpec):
    PARAMETERS = {
        **standard_component_specs.ImportSchemaGenSpec.PARAMETERS,
        SCHEMA_SHA256_KEY: ExecutionParameter(type=str),
    }


def file_sha256(path: str) -> str:
    with fileio.open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def project_relative(path: str) -> str:
    """`path` relative to the project when it is a file inside it, else unchanged."""
    from settings.configs import REPO_ROOT, is_remote

    if is_remote(path) or not os.path.isabs(path):
        return path
    absolute = os.path.realpath(path)
    root = os.path.realpath(REPO_ROOT)
    return os.path.relpath(absolute, root) if absolute.startswith(root + os.sep) else path


def resolve(path: str) -> str:
    """The file a compiled `schema_file` names (relative = inside the project)."""
    from settings.configs import REPO_ROOT, is_remote

    if is_remote(path) or os.path.isabs(path):
        return path
    return str(REPO_ROOT / path)


def check_unchanged(pipeline_node) -> None:
    """Raises ValueError if a compiled ImportSchemaGen node's schema file has
    changed since it was compiled (no-op for any other node)."""
    parameters = pipeline_node.parameters.parameters
    if SCHEMA_SHA256_KEY not in parameters:
        return
    compiled = parameters[SCHEMA_SHA256_KEY].field_value.string_value
    path = resolve(parameters[standard_component_specs.SCHEMA_FILE_KEY].field_value.string_value)
    if file_sha256(path) != compiled:
        raise ValueError(
            f"the schema file {path} changed after the pipeline was compiled; compile the "
            "pipeline again so that ImportSchemaGen imports the file as it is now"
        )


class Executor(import_schema_gen_executor.Executor):
    """TFX's executor, on the file `resolve` names."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        schema_file = resolve(exec_properties[standard_component_specs.SCHEMA_FILE_KEY])
        super().Do(
            input_dict,
            output_dict,
            {**exec_properties, standard_component_specs.SCHEMA_FILE_KEY: schema_file},
        )


class ImportSchemaGen(component.ImportSchemaGen):
    SPEC_CLASS = CuratedSchemaSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, schema_file: str):
        spec = CuratedSchemaSpec(
            schema_file=schema_file,
            schema_sha256=file_sha256(resolve(schema_file)),
            schema=types.Channel(type=standard_artifacts.Schema),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
