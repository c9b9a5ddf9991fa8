"""The component graph, defined once; every runner and the notebook build it here.

CsvExampleGen (one span: the newest, or --span) -> StatisticsGen
  -> ImportSchemaGen (curated; or SchemaGen) -> ExampleValidator
  -> DataValidationGate (anomalies stop the run; drift vs. the previous run's statistics)
  -> training window (the newest validated spans) -> Transform -> Trainer
  -> Evaluator (on the window's eval rows, vs. latest blessed model) -> Pusher
  -> served model -> BulkInferrer on the newest span's open complaints
     (OpenComplaintsExampleGen) -> ScoredComplaints (a ranked scores.csv)
"""

from __future__ import annotations

import dataclasses
import os

from ml_metadata.proto import metadata_store_pb2

# TFX's modules, not the `tfx.v1` facade: importing `tfx.v1` also imports its
# Google Cloud extensions (~19 s per process here), paid again by every
# Airflow task and Kubeflow container. These are the classes tfx.v1 re-exports.
from tfx.components import (
    CsvExampleGen,
    ExampleValidator,
    SchemaGen,
    StatisticsGen,
    Transform,
)
from tfx.dsl.components.base.base_node import BaseNode
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)
from tfx.orchestration.data_types import RuntimeParameter
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, range_config_pb2, trainer_pb2, transform_pb2
from tfx.types import Channel, standard_artifacts

from components import (
    batch_scoring,
    curated_schema,
    idempotent_pusher,
    model_baseline,
    private_training,
    validation_gate,
)
from data import prepare
from data import schema as data_schema
from models import model
from models import private_training as dp_sgd
from pipeline import evaluation, node_ids, splits
from settings import beam
from settings.configs import SPAN_SPEC, GraphSettings


@dataclasses.dataclass
class RuntimeParameters:
    """Settings an orchestrator lets users change per run (e.g. in the KFP UI).

    None means the value is fixed when the pipeline is built, from the config.
    `train_args` is a JSON TrainArgs string (`{"num_steps": 2000}`): TFX's
    Kubeflow V2 compiler turns only top-level parameters into pipeline inputs.
    """

    data_root: RuntimeParameter | None = None
    train_args: RuntimeParameter | None = None


def _range_config(config: GraphSettings) -> range_config_pb2.RangeConfig | None:
    """--span's span; None lets ExampleGen pick the latest span it finds."""
    if config.span is None:  # the settings refuse a span without {SPAN} in the pattern
        return None
    return range_config_pb2.RangeConfig(
        static_range=range_config_pb2.StaticRange(
            start_span_number=config.span, end_span_number=config.span
        )
    )


def _example_gen(config: GraphSettings, runtime: RuntimeParameters) -> CsvExampleGen:
    return CsvExampleGen(
        input_base=runtime.data_root or os.fspath(config.data_root),
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="single_split", pattern=config.input_pattern)]
        ),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
                    for name, buckets in splits.HASH_BUCKETS.items()
                ]
            )
        ),
        range_config=_range_config(config),
    ).with_id(node_ids.EXAMPLE_GEN)


def _open_example_gen(config: GraphSettings, runtime: RuntimeParameters) -> CsvExampleGen:
    """The open complaints of the newest span that has them (or of --span), in
    one split: the complaints batch scoring scores (data/prepare.py)."""
    return CsvExampleGen(
        input_base=runtime.data_root or os.fspath(config.data_root),
        input_config=example_gen_pb2.Input(
            splits=[
                example_gen_pb2.Input.Split(
                    name=batch_scoring.OPEN_SPLIT,
                    pattern=prepare.open_pattern(config.input_pattern),
                )
            ]
        ),
        # No split config: the output splits are the input's (one, unsplit).
        output_config=example_gen_pb2.Output(),
        range_config=_range_config(config),
    ).with_id(node_ids.OPEN_EXAMPLE_GEN)


def _model_resolver(
    node_id: str, strategy: type, project_resolvers: bool, **inputs: Channel
) -> Resolver:
    """A resolver over every model, blessing and push with one of the
    project's strategies (components/model_baseline.py, batch_scoring.py).
    Vertex compiles only TFX's own strategy (the latest blessed model, into
    a query of its own): there it resolves that, and no push."""
    models = {
        "model": Channel(type=standard_artifacts.Model),
        "model_blessing": Channel(type=standard_artifacts.ModelBlessing),
    }
    if project_resolvers:
        resolver = Resolver(
            strategy_class=strategy,
            pushed_model=Channel(type=standard_artifacts.PushedModel),
            **inputs,
            **models,
        )
    else:
        resolver = Resolver(strategy_class=LatestBlessedModelStrategy, **models)
    return resolver.with_id(node_id)


def create_components(
    config: GraphSettings, runtime: RuntimeParameters | None = None, project_resolvers: bool = True
) -> list[BaseNode]:
    """The pipeline's components in topological order (the notebook runs them one by one).

    `project_resolvers=False` leaves out the resolvers with this project's
    strategies: drift is then not measured, and Transform, Trainer and
    Evaluator read this run's span only. For orchestrators that run resolvers
    themselves and cannot run those strategies (Vertex; see
    runners/kubeflow_runner.py).
    """
    runtime = runtime or RuntimeParameters()
    example_gen = _example_gen(config, runtime)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"]).with_id(
        node_ids.STATISTICS_GEN
    )
    if config.infer_schema:
        schema_gen = SchemaGen(
            statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True
        ).with_id(node_ids.SCHEMA_GEN)
    else:
        schema_gen = curated_schema.ImportSchemaGen(
            schema_file=os.fspath(config.schema_path)
        ).with_id(node_ids.IMPORT_SCHEMA_GEN)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    ).with_id(node_ids.EXAMPLE_VALIDATOR)
    # The drift baseline's candidates: earlier runs' passed validations, each
    # naming its span and its statistics; the gate compares with the newest of
    # another span (the previous span once a new span arrives, and on a re-run
    # the span compared with the first time). A channel by producer id, not
    # the gate's output: the resolver runs before the gate, so it never
    # resolves this run's own, also where independent tasks run at once.
    statistics_resolver = (
        Resolver(
            strategy_class=validation_gate.EarlierValidationsStrategy,
            validations=Channel(
                type=validation_gate.DataValidation,
                producer_component_id=node_ids.VALIDATION_GATE,
                output_key="validation",
            ),
        ).with_id(node_ids.STATISTICS_RESOLVER)
        if config.compare_with_baseline and project_resolvers
        else None
    )
    validation = validation_gate.DataValidationGate(
        examples=example_gen.outputs["examples"],
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        anomalies=example_validator.outputs["anomalies"],
        earlier_validations=(
            statistics_resolver.outputs["validations"] if statistics_resolver else None
        ),
        data_location=os.path.join(os.fspath(config.data_root), config.input_pattern),
        drift_blocks=config.drift_blocks,
        schema_review=data_schema.review_command(
            os.fspath(config.data_root), os.fspath(config.schema_path), SPAN_SPEC
        ),
    ).with_id(node_ids.VALIDATION_GATE)
    # The training window: the newest validated spans, this run's among them
    # (it resolves after the gate). Span by span, no month is too small to
    # train on, and a refused span never enters a later window.
    window = (
        Resolver(
            strategy_class=validation_gate.ValidatedSpanWindowStrategy,
            config={"num_spans": config.train_window_spans},
            examples=Channel(
                type=standard_artifacts.Examples,
                producer_component_id=example_gen.id,
                output_key="examples",
            ),
        ).with_id(node_ids.WINDOW_RESOLVER)
        if project_resolvers
        else None
    )
    if window:
        window.add_upstream_node(validation)
    examples = window.outputs["examples"] if window else example_gen.outputs["examples"]
    transform = Transform(
        examples=examples,
        schema=schema_gen.outputs["schema"],
        preprocessing_fn="models.preprocessing.preprocessing_fn",
        # Vocabularies and quantiles come from train only; eval/test must not
        # leak into them, but must be transformed for evaluation and benchmarks.
        splits_config=transform_pb2.SplitsConfig(
            analyze=[splits.TRAIN], transform=list(splits.HASH_BUCKETS)
        ),
        # Nothing reads TFDV statistics of the raw or transformed data here
        # (StatisticsGen's are the validated ones) nor an analyzer cache:
        # computing and writing them was a third of Transform's time (43 s ->
        # 29 s on the 2015 export, same vocabularies and model).
        disable_statistics=True,
        disable_analyzer_cache=True,
    ).with_id(node_ids.TRANSFORM)
    # Order only, no artifact: a re-validated span must not invalidate
    # Transform's cache, but nothing trains until the gate has passed.
    transform.add_upstream_node(validation)
    trainer = private_training.Trainer(
        run_fn="models.model.run_fn",
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=runtime.train_args or trainer_pb2.TrainArgs(num_steps=config.train_steps),
        eval_args=trainer_pb2.EvalArgs(splits=[splits.VALIDATION], num_steps=config.eval_steps),
        custom_config={
            **{key: getattr(config, key) for key in model.CUSTOM_CONFIG_KEYS},
            dp_sgd.PRIVATE_TRAINING_KEY: dp_sgd.dp_sgd_settings(config),
        },
    ).with_id(node_ids.TRAINER)
    # What the Evaluator compares this run's model with: the served model (the
    # newest push's), or, when this run's model already is that model, what
    # it was judged against when blessed, so the Evaluator's cache answers
    # instead of comparing a model with itself.
    model_resolver = (
        _model_resolver(
            node_ids.BASELINE_RESOLVER,
            model_baseline.BaselineModelStrategy,
            project_resolvers,
            candidate=trainer.outputs["model"],
        )
        if config.compare_with_baseline
        else None
    )
    evaluator = private_training.Evaluator(
        # Raw examples: the model's serving signature applies Transform itself,
        # so evaluation exercises the same path as serving. The eval rows of
        # every span in the window (never trained on: each span is split by
        # hash): the data the model is trained to represent, and enough rows
        # for a stable AUC when the newest span is one small month. Candidate
        # and baseline are judged on the same rows.
        examples=examples,
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"] if model_resolver else None,
        example_splits=[splits.EVAL],
        eval_config=evaluation.eval_config(config),
        # Blessed only within the privacy budget (components/private_training.py).
        max_epsilon=config.max_epsilon,
    ).with_id(node_ids.EVALUATOR)
    pusher = idempotent_pusher.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=config.model_dir)
        ),
        # What the model card states: its metrics, window and thresholds.
        evaluation=evaluator.outputs["evaluation"],
        examples=examples,
        card_settings={
            "model_name": config.model_name,
            "data_root": os.fspath(config.data_root),
            "min_auc": config.min_auc,
            "max_auc_regression": config.max_auc_regression,
            "decision_threshold": config.decision_threshold,
        },
    ).with_id(node_ids.PUSHER)
    # Batch scoring, after the push: the served model on the open complaints.
    open_example_gen = _open_example_gen(config, runtime)
    open_example_gen.add_upstream_node(validation)
    served = _model_resolver(
        node_ids.SERVED_MODEL_RESOLVER, batch_scoring.ServedModelStrategy, project_resolvers
    )
    served.add_upstream_node(pusher)
    inferrer = batch_scoring.ServedModelInferrer(
        examples=open_example_gen.outputs["examples"],
        model=served.outputs["model"],
        model_blessing=served.outputs["model_blessing"],
    ).with_id(node_ids.BULK_INFERRER)
    scored = batch_scoring.ScoredComplaints(
        open_examples=open_example_gen.outputs["examples"],
        scored_examples=inferrer.outputs["output_examples"],
        pushed_model=served.outputs["pushed_model"] if project_resolvers else None,
    ).with_id(node_ids.SCORED_COMPLAINTS)
    components = [
        example_gen,
        statistics_resolver,
        statistics_gen,
        schema_gen,
        example_validator,
        validation,
        window,
        transform,
        trainer,
        model_resolver,
        evaluator,
        pusher,
        open_example_gen,
        served,
        inferrer,
        scored,
    ]
    return [c for c in components if c is not None]


def create_pipeline(
    config: GraphSettings,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    runtime: RuntimeParameters | None = None,
    project_resolvers: bool = True,
) -> Pipeline:
    """The whole graph, from the settings that shape it (`config.graph()`; a
    full PipelineConfig is one too, but only these are read). Runners pass
    their MLMD connection (None on Kubeflow, where the cluster provides the
    store)."""
    return Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=os.fspath(config.pipeline_root),
        components=create_components(config, runtime, project_resolvers),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam.pipeline_args(config),
    )


def component_edges(pipeline: Pipeline) -> set[tuple[str, str]]:
    """(upstream id, downstream id) pairs: the graph every backend must reproduce."""
    return {
        (upstream.id, component.id)
        for component in pipeline.components
        for upstream in component.upstream_nodes
    }


def component_ids(pipeline: Pipeline) -> dict[str, BaseNode]:
    return {component.id: component for component in pipeline.components}
