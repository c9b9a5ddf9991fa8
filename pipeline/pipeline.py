"""The component graph, defined once; every runner and the notebook build it here.

CsvExampleGen -> StatisticsGen -> ImportSchemaGen (curated; or SchemaGen) -> ExampleValidator
  -> DataValidationGate (anomalies stop the run; drift vs. the previous run's statistics)
  -> Transform -> Trainer -> Evaluator (vs. latest blessed model) -> Pusher
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional, Set, Tuple

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components import idempotent_pusher, validation_gate
from pipeline import evaluation
from pipeline.configs import PipelineConfig

SPLITS = {"train": 8, "eval": 1, "test": 1}  # hash buckets: 80/10/10
RESOLVER_ID = "latest_blessed_model_resolver"
STATISTICS_RESOLVER_ID = "previous_statistics_resolver"
RuntimeParameter = tfx.dsl.experimental.RuntimeParameter


@dataclasses.dataclass
class RuntimeParameters:
    """Settings an orchestrator lets users change per run (e.g. in the KFP UI).

    None means the value is fixed when the pipeline is built, from the config.
    `train_args` is a JSON TrainArgs string (`{"num_steps": 2000}`): TFX's
    Kubeflow V2 compiler turns only top-level parameters into pipeline inputs.
    """

    data_root: Optional[RuntimeParameter] = None
    train_args: Optional[RuntimeParameter] = None


def _example_gen(config: PipelineConfig,
                 runtime: RuntimeParameters) -> tfx.components.CsvExampleGen:
    range_config = None
    if config.span is not None and "{SPAN}" in config.input_pattern:
        range_config = tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
            start_span_number=config.span, end_span_number=config.span))
    return tfx.components.CsvExampleGen(
        input_base=runtime.data_root or os.fspath(config.data_root),
        # Without a range config ExampleGen picks the latest span it finds.
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="single_split", pattern=config.input_pattern)]),
        output_config=tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
            tfx.proto.SplitConfig.Split(name=name, hash_buckets=buckets)
            for name, buckets in SPLITS.items()])),
        range_config=range_config,
    )


def create_components(config: PipelineConfig,
                      runtime: Optional[RuntimeParameters] = None,
                      builtin_resolvers_only: bool = False) -> List[tfx.types.BaseNode]:
    """The pipeline's components in topological order (the notebook runs them one by one).

    `builtin_resolvers_only`: for orchestrators that run resolvers themselves
    and know only TFX's built-in strategies (Vertex); the statistics resolver
    then takes the latest statistics, validated or not.
    """
    runtime = runtime or RuntimeParameters()
    example_gen = _example_gen(config, runtime)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if config.infer_schema:
        schema_gen = tfx.components.SchemaGen(
            statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    else:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=os.fspath(config.schema_path))
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    # The latest statistics that passed validation in an earlier run (the
    # previous span, once a new span arrives). StatisticsGen waits for it, so it
    # never resolves this run's own, also where independent tasks run at once.
    statistics_resolver = tfx.dsl.Resolver(
        strategy_class=(tfx.dsl.experimental.LatestArtifactStrategy if builtin_resolvers_only
                        else validation_gate.LatestValidatedStatisticsStrategy),
        # StatisticsGen's only: Transform writes ExampleStatistics too.
        statistics=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics,
                                   producer_component_id=statistics_gen.id,
                                   output_key="statistics"),
    ).with_id(STATISTICS_RESOLVER_ID) if config.compare_with_baseline else None
    if statistics_resolver:
        statistics_gen.add_upstream_node(statistics_resolver)
    validation = validation_gate.DataValidationGate(
        examples=example_gen.outputs["examples"],
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        anomalies=example_validator.outputs["anomalies"],
        baseline_statistics=(statistics_resolver.outputs["statistics"]
                             if statistics_resolver else None),
        data_location=os.path.join(os.fspath(config.data_root), config.input_pattern),
        drift_blocks=config.drift_blocks,
    )
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn="models.preprocessing.preprocessing_fn",
        # Vocabularies and quantiles come from train only; eval/test must not
        # leak into them, but must be transformed for evaluation and benchmarks.
        splits_config=tfx.proto.SplitsConfig(analyze=["train"], transform=list(SPLITS)),
    )
    # Order only, no artifact: a re-validated span must not invalidate
    # Transform's cache, but nothing trains until the gate has passed.
    transform.add_upstream_node(validation)
    trainer = tfx.components.Trainer(
        run_fn="models.model.run_fn",
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=runtime.train_args or tfx.proto.TrainArgs(num_steps=config.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=config.eval_steps),
        custom_config={"batch_size": config.batch_size, "learning_rate": config.learning_rate,
                       "seed": config.seed},
    )
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(RESOLVER_ID) if config.compare_with_baseline else None
    evaluator = tfx.components.Evaluator(
        # Raw examples: the model's serving signature applies Transform itself,
        # so evaluation exercises the same path as serving.
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"] if model_resolver else None,
        example_splits=["eval"],
        eval_config=evaluation.eval_config(config),
    )
    pusher = tfx.components.Pusher(
        # Re-blessing an unchanged model must not push it again as a new version.
        custom_executor_spec=executor_spec.ExecutorClassSpec(idempotent_pusher.Executor),
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=os.path.join(config.serving_model_dir, config.model_name))),
    )
    components = [example_gen, statistics_resolver, statistics_gen, schema_gen,
                  example_validator, validation, transform, trainer, model_resolver,
                  evaluator, pusher]
    return [c for c in components if c is not None]


def create_pipeline(config: PipelineConfig,
                    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
                    runtime: Optional[RuntimeParameters] = None,
                    builtin_resolvers_only: bool = False) -> tfx.dsl.Pipeline:
    """The whole graph. Runners pass their MLMD connection (None on Kubeflow,
    where the cluster provides the store)."""
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=os.fspath(config.pipeline_root),
        components=create_components(config, runtime, builtin_resolvers_only),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )


def component_edges(pipeline: tfx.dsl.Pipeline) -> Set[Tuple[str, str]]:
    """(upstream id, downstream id) pairs: the graph every backend must reproduce."""
    return {(upstream.id, component.id)
            for component in pipeline.components
            for upstream in component.upstream_nodes}


def component_ids(pipeline: tfx.dsl.Pipeline) -> Dict[str, tfx.types.BaseNode]:
    return {component.id: component for component in pipeline.components}
