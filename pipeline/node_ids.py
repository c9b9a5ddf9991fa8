"""The id of every node of the graph, stated once.

`pipeline.create_components` gives each node its id from here, and every
reader of ML Metadata (run summary, run history, report, progress lines)
finds a node's executions by the same constants. Plain strings, so readers
import no TFX to know them. They are TFX's default ids (a component's class
name) where the graph has one node of that class, so stores written before
this module keep reading the same.
"""

EXAMPLE_GEN = "CsvExampleGen"
STATISTICS_GEN = "StatisticsGen"
# One of the two schema nodes is in the graph: the curated schema's importer,
# or SchemaGen with `--infer-schema`.
IMPORT_SCHEMA_GEN = "ImportSchemaGen"
SCHEMA_GEN = "SchemaGen"
SCHEMA_NODES = (IMPORT_SCHEMA_GEN, SCHEMA_GEN)
EXAMPLE_VALIDATOR = "ExampleValidator"
VALIDATION_GATE = "DataValidationGate"
TRANSFORM = "Transform"
TRAINER = "Trainer"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"
# Batch scoring of the newest span's open complaints (components/batch_scoring.py).
OPEN_EXAMPLE_GEN = "OpenComplaintsExampleGen"
BULK_INFERRER = "ServedModelInferrer"
SCORED_COMPLAINTS = "ScoredComplaints"
# Resolvers query ML Metadata only; they run no executor.
STATISTICS_RESOLVER = "previous_statistics_resolver"
WINDOW_RESOLVER = "training_window_resolver"
BASELINE_RESOLVER = "latest_blessed_model_resolver"
SERVED_MODEL_RESOLVER = "served_model_resolver"
RESOLVERS = (STATISTICS_RESOLVER, WINDOW_RESOLVER, BASELINE_RESOLVER, SERVED_MODEL_RESOLVER)


def node_context_name(pipeline_name: str, node_id: str) -> str:
    """The name of the ML Metadata context TFX files a node's executions
    under (type "node"; tfx.orchestration.portable.mlmd.context_lib)."""
    return f"{pipeline_name}.{node_id}"
