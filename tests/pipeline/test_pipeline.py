import json
from pathlib import Path

from google.protobuf import json_format
from tfx import v1 as tfx

from pipeline import node_ids, pipeline
from settings.configs import PipelineConfig

# The graph, stated once. Backend tests (Airflow, Kubeflow) compare their
# compiled graphs against pipeline.component_edges(), which this pins down.
EXPECTED_EDGES = {
    ("CsvExampleGen", "StatisticsGen"),
    ("StatisticsGen", "ExampleValidator"),
    ("ImportSchemaGen", "ExampleValidator"),
    ("CsvExampleGen", "DataValidationGate"),
    ("StatisticsGen", "DataValidationGate"),
    ("ImportSchemaGen", "DataValidationGate"),
    ("ExampleValidator", "DataValidationGate"),
    (node_ids.STATISTICS_RESOLVER, "DataValidationGate"),
    ("DataValidationGate", node_ids.WINDOW_RESOLVER),
    (node_ids.WINDOW_RESOLVER, "Transform"),
    ("ImportSchemaGen", "Transform"),
    ("DataValidationGate", "Transform"),
    ("Transform", "Trainer"),
    ("ImportSchemaGen", "Trainer"),
    (node_ids.WINDOW_RESOLVER, "Evaluator"),
    ("Trainer", "Evaluator"),
    ("Trainer", node_ids.BASELINE_RESOLVER),  # the baseline depends on this run's model
    (node_ids.BASELINE_RESOLVER, "Evaluator"),
    ("Trainer", "Pusher"),
    ("Evaluator", "Pusher"),
    (node_ids.WINDOW_RESOLVER, "Pusher"),  # the model card names the window's spans
    # Batch scoring after the push: the served model on the open complaints.
    ("DataValidationGate", node_ids.OPEN_EXAMPLE_GEN),
    ("Pusher", node_ids.SERVED_MODEL_RESOLVER),
    (node_ids.OPEN_EXAMPLE_GEN, node_ids.BULK_INFERRER),
    (node_ids.SERVED_MODEL_RESOLVER, node_ids.BULK_INFERRER),
    (node_ids.OPEN_EXAMPLE_GEN, node_ids.SCORED_COMPLAINTS),
    (node_ids.BULK_INFERRER, node_ids.SCORED_COMPLAINTS),
    (node_ids.SERVED_MODEL_RESOLVER, node_ids.SCORED_COMPLAINTS),
}


def _proto(component, key, message):
    """Components keep proto parameters as JSON strings."""
    return json_format.Parse(component.exec_properties[key], message)


def test_graph_has_the_expected_components_and_edges(tmp_path):
    built = pipeline.create_pipeline(PipelineConfig(pipeline_root=str(tmp_path)))
    assert set(pipeline.component_ids(built)) == {
        "CsvExampleGen",
        node_ids.STATISTICS_RESOLVER,
        "StatisticsGen",
        "ImportSchemaGen",
        "ExampleValidator",
        "DataValidationGate",
        node_ids.WINDOW_RESOLVER,
        "Transform",
        "Trainer",
        node_ids.BASELINE_RESOLVER,
        "Evaluator",
        "Pusher",
        node_ids.OPEN_EXAMPLE_GEN,
        node_ids.SERVED_MODEL_RESOLVER,
        node_ids.BULK_INFERRER,
        node_ids.SCORED_COMPLAINTS,
    }
    assert pipeline.component_edges(built) == EXPECTED_EDGES


def test_curated_schema_is_imported_unless_inference_is_asked_for(tmp_path):
    config = PipelineConfig(pipeline_root=str(tmp_path))
    imported = pipeline.component_ids(pipeline.create_pipeline(config))["ImportSchemaGen"]
    assert imported.exec_properties["schema_file"] == config.schema_path
    assert Path(config.schema_path).is_file()

    inferred = pipeline.create_pipeline(
        PipelineConfig(pipeline_root=str(tmp_path), infer_schema=True)
    )
    renamed = {
        (a.replace("ImportSchemaGen", "SchemaGen"), b.replace("ImportSchemaGen", "SchemaGen"))
        for a, b in EXPECTED_EDGES
    }
    assert pipeline.component_edges(inferred) == renamed | {("StatisticsGen", "SchemaGen")}


def test_the_gate_gets_the_data_location_and_drift_policy():
    config = PipelineConfig(drift_blocks=True)
    gate = pipeline.component_ids(pipeline.create_pipeline(config))["DataValidationGate"]
    assert gate.exec_properties["drift_blocks"] is True
    assert gate.exec_properties["data_location"].endswith("span-{SPAN}/*.csv")
    # The command a refusal prints: the run's own paths, the span filled in by the gate.
    assert gate.exec_properties["schema_review"] == (
        f"python -m data.schema diff --span {{SPAN}} --data-root {config.data_root} "
        f"--schema-path {config.schema_path}"
    )


def test_transform_analyzes_train_only_and_transforms_every_split():
    transform = pipeline.component_ids(pipeline.create_pipeline(PipelineConfig()))["Transform"]
    splits = _proto(transform, "splits_config", tfx.proto.SplitsConfig())
    assert list(splits.analyze) == ["train"]
    assert list(splits.transform) == ["train", "validation", "eval", "test"]
    assert transform.exec_properties["preprocessing_fn"] == "models.preprocessing.preprocessing_fn"


def test_the_trainer_stops_on_validation_rows_the_evaluator_never_judges_on():
    components = pipeline.component_ids(pipeline.create_pipeline(PipelineConfig()))
    eval_args = _proto(components["Trainer"], "eval_args", tfx.proto.EvalArgs())
    assert list(eval_args.splits) == ["validation"]
    judged = json.loads(components["Evaluator"].exec_properties["example_splits"])
    assert judged == ["eval"]
    assert not set(judged) & {"train", "validation"}


def test_latest_span_by_default_and_a_fixed_span_on_request():
    latest = pipeline.component_ids(pipeline.create_pipeline(PipelineConfig()))["CsvExampleGen"]
    assert latest.exec_properties["range_config"] is None
    assert "span-{SPAN}" in latest.exec_properties["input_config"]

    fixed = pipeline.component_ids(pipeline.create_pipeline(PipelineConfig(span=20141113)))[
        "CsvExampleGen"
    ]
    range_config = _proto(fixed, "range_config", tfx.proto.RangeConfig())
    assert range_config.static_range.start_span_number == 20141113
    assert range_config.static_range.end_span_number == 20141113


def test_batch_scoring_reads_the_open_complaints_of_the_span_training_reads():
    for config in (PipelineConfig(), PipelineConfig(span=20150319)):
        components = pipeline.component_ids(pipeline.create_pipeline(config))
        reader, training = components[node_ids.OPEN_EXAMPLE_GEN], components["CsvExampleGen"]
        (split,) = _proto(reader, "input_config", tfx.proto.Input()).splits
        assert (split.name, split.pattern) == ("open", "span-{SPAN}/open/*.csv")
        # No split config: one unsplit output, every open complaint scored.
        assert not _proto(reader, "output_config", tfx.proto.Output()).split_config.splits
        assert reader.exec_properties["range_config"] == training.exec_properties["range_config"]
        assert reader.exec_properties["input_base"] == training.exec_properties["input_base"]
    inferrer = components[node_ids.BULK_INFERRER]
    model_spec = _proto(inferrer, "model_spec", tfx.proto.ModelSpec())
    assert list(model_spec.model_signature_name) == ["serving_default"]
    assert list(_proto(inferrer, "data_spec", tfx.proto.DataSpec()).example_splits) == ["open"]


def test_pusher_writes_under_the_model_name(tmp_path):
    config = PipelineConfig(serving_model_dir=str(tmp_path), model_name="m")
    pusher = pipeline.component_ids(pipeline.create_pipeline(config))["Pusher"]
    destination = _proto(pusher, "push_destination", tfx.proto.PushDestination())
    assert destination.filesystem.base_directory == str(tmp_path / "m")


def test_settings_reach_the_pipeline():
    config = PipelineConfig(
        enable_cache=False, beam_pipeline_args=["--direct_num_workers=2"], train_steps=7
    )
    built = pipeline.create_pipeline(config)
    assert built.enable_cache is False
    assert built.beam_pipeline_args == ["--direct_num_workers=2"]
    trainer = pipeline.component_ids(built)["Trainer"]
    assert _proto(trainer, "train_args", tfx.proto.TrainArgs()).num_steps == 7


def test_without_baseline_comparison_the_resolvers_are_left_out():
    built = pipeline.create_pipeline(PipelineConfig(compare_with_baseline=False))
    resolvers = {node_ids.BASELINE_RESOLVER, node_ids.STATISTICS_RESOLVER}
    assert not resolvers & set(pipeline.component_ids(built))
    assert pipeline.component_edges(built) == {
        edge for edge in EXPECTED_EDGES if not resolvers & set(edge)
    }


def test_a_pattern_without_span_reads_files_directly():
    example_gen = pipeline.component_ids(
        pipeline.create_pipeline(PipelineConfig(input_pattern="*.csv"))
    )["CsvExampleGen"]
    assert _proto(example_gen, "input_config", tfx.proto.Input()).splits[0].pattern == "*.csv"
    assert example_gen.exec_properties["range_config"] is None


def test_the_training_window_feeds_transform_and_the_evaluator():
    built = pipeline.create_pipeline(PipelineConfig(train_window_spans=5))
    components = pipeline.component_ids(built)
    window = components[node_ids.WINDOW_RESOLVER]
    assert window.exec_properties["source_uri"] == {"num_spans": 5}
    for reader in ("Transform", "Evaluator"):
        assert components[reader].inputs["examples"].producer_component_id == window.id


def test_without_project_resolvers_this_run_s_span_is_all_that_is_read():
    built = pipeline.create_pipeline(PipelineConfig(), project_resolvers=False)
    components = pipeline.component_ids(built)
    assert not {node_ids.WINDOW_RESOLVER, node_ids.STATISTICS_RESOLVER} & set(components)
    for reader in ("Transform", "Evaluator"):
        assert components[reader].inputs["examples"].producer_component_id == "CsvExampleGen"


def test_the_graph_is_built_from_the_graph_settings_alone(tmp_path):
    """What create_pipeline needs is in GraphSettings: a config holding
    nothing else (no store, orchestrator or serving settings) builds it."""
    full = PipelineConfig(pipeline_root=str(tmp_path))
    from_graph = pipeline.create_pipeline(full.graph())
    assert pipeline.component_edges(from_graph) == pipeline.component_edges(
        pipeline.create_pipeline(full)
    )
