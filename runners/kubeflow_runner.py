"""Compiles the pipeline to Kubeflow Pipelines v2 YAML with TFX's KubeflowV2DagRunner.

    python runners/kubeflow_runner.py --help
    python runners/kubeflow_runner.py --pipeline-root gs://BUCKET/root \\
        --data-root gs://BUCKET/spans --serving-model-dir gs://BUCKET/serving_model \\
        --kubeflow-image REGISTRY/cfpb-tfx-pipeline:TAG

Writes build/<pipeline_name>.yaml (or --kubeflow-output), ready to upload in
the KFP UI or with the kfp client. Orchestrator settings only: the graph is
pipeline.create_pipeline. `data_root` and `train_args` are pipeline runtime
parameters users can change per run in the KFP UI.

Two targets, because TFX's v2 spec and the open-source KFP v2 backend differ:
- `oss` (default): open-source KFP v2. Its backend compiler runs only
  container and importer executors ("non-container and non-importer executor
  not implemented"), so the latest-blessed-model Resolver, which TFX compiles
  to a Vertex ResolverSpec, is left out; the Evaluator then blesses on the
  absolute AUC floor only. It runs no lifecycle hooks either, so ExampleGen
  reads one span folder (see `_for_open_source_kfp`).
- `vertex`: Vertex AI Pipelines, which runs ResolverSpecs: the full graph.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

TARGETS = ("oss", "vertex")
_YAML_HEADER = "# PIPELINE DEFINITION\n"


def output_path(config) -> Path:
    from pipeline.configs import REPO_ROOT
    return Path(config.kubeflow_output or REPO_ROOT / "build" / f"{config.pipeline_name}.yaml")


def runtime_parameters(config):
    """Knobs users may set per run in the KFP UI, defaulting to the config."""
    from pipeline.pipeline import RuntimeParameter, RuntimeParameters
    return RuntimeParameters(
        data_root=RuntimeParameter(
            name="data_root", ptype=str, default=config.data_root),
        train_args=RuntimeParameter(
            name="train_args", ptype=str,
            default=json.dumps({"num_steps": config.train_steps})),
    )


def _with_parameter_defaults(spec: dict, runtime) -> dict:
    """Writes each runtime parameter's default into the root input definitions.

    TFX 1.16 compiles RuntimeParameter defaults into nothing (a Vertex job
    gets values only through `parameter_values` at submission); without a
    `defaultValue` the KFP UI demands a value for every parameter.
    """
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    for field in dataclasses.fields(runtime):
        parameter = getattr(runtime, field.name)
        if parameter is not None:
            parameters[parameter.name]["defaultValue"] = parameter.default
            parameters[parameter.name]["isOptional"] = True
    return spec


def _for_open_source_kfp(config):
    """The two changes open-source KFP v2 needs (see the module docstring).

    Its backend also runs no lifecycle hooks, so TFX's ExampleGen driver, which
    resolves `{SPAN}`, never runs there: ExampleGen reads one span folder
    instead, `<data_root>/span-<N>`, and `data_root` (a runtime parameter)
    names that folder. N defaults to `--span`, else the latest bundled span.
    """
    from data import prepare
    span = config.span or len(prepare.raw_exports(Path(config.raw_data_dir)))
    return dataclasses.replace(
        config, compare_with_baseline=False, span=None, input_pattern="*.csv",
        data_root=str(prepare.span_dir(Path(config.data_root), span))
        if "://" not in config.data_root else f"{config.data_root.rstrip('/')}/span-{span}")


def _image_relative_schema(config):
    """The curated schema as the image sees it: relative to the project folder,
    which is the image's working directory (Dockerfile WORKDIR)."""
    from pipeline.configs import REPO_ROOT
    schema = Path(config.schema_path)
    if schema.is_absolute() and REPO_ROOT in schema.parents:
        return dataclasses.replace(config, schema_path=str(schema.relative_to(REPO_ROOT)))
    return config


def compile_pipeline(config) -> Path:
    """Writes the KFP v2 pipeline YAML for `config`; returns its path."""
    import yaml
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from pipeline import pipeline

    if config.kubeflow_target not in TARGETS:
        raise ValueError(f"kubeflow_target must be one of {TARGETS}, not {config.kubeflow_target!r}")
    if config.kubeflow_target == "oss":
        config = _for_open_source_kfp(config)
    config = _image_relative_schema(config)
    # No MLMD connection: on Kubeflow the cluster's metadata store is used.
    runtime = runtime_parameters(config)
    # Vertex runs resolvers itself and compiles only TFX's built-in strategies
    # (untested there: no Vertex project here).
    tfx_pipeline = pipeline.create_pipeline(
        config, runtime=runtime, builtin_resolvers_only=config.kubeflow_target == "vertex")
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=config.kubeflow_image,
            # Schema 2.1 is what KFP 2.x backends expect, and TFX 1.16's YAML
            # writer fails on runtime parameters with the 2.0 schema.
            use_pipeline_spec_2_1=True),
    )
    spec = _with_parameter_defaults(runner.run(tfx_pipeline, write_out=False)["pipelineSpec"],
                                    runtime)

    path = output_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_YAML_HEADER + f"# Compiled by runners/kubeflow_runner.py for target "
                    f"'{config.kubeflow_target}' with tfx-{spec.get('sdkVersion', '?')}.\n"
                    + yaml.safe_dump(spec, sort_keys=True))
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    from pipeline import configs

    parser = argparse.ArgumentParser(
        prog="python runners/kubeflow_runner.py",
        description="Compile the CFPB dispute pipeline to Kubeflow Pipelines v2 YAML.")
    config, _ = configs.parse_args(parser, argv)
    if "://" not in config.pipeline_root:
        print(f"note: pipeline root {config.pipeline_root} is a local path; a cluster needs a "
              "bucket every task can reach (--pipeline-root gs://...)", file=sys.stderr)
    try:
        path = compile_pipeline(config)
    except ValueError as e:
        parser.error(str(e))
    print(f"Wrote {path} (target {config.kubeflow_target}, image {config.kubeflow_image})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
