"""Batch scoring after a push: the served model's dispute probability for each
open complaint of the newest span, ranked, as a CSV.

The complaints are those data/prepare.py writes to a span's
`open/complaints.csv`: the company has responded but the consumer may still
dispute (the prediction moment, data/README.md), and those still in progress,
which are listed as not scorable yet, never scored on a response the model
never saw. Three pieces, wired in pipeline/pipeline.py after the Pusher:

- `ServedModelStrategy` resolves the model TF Serving serves (the newest
  push's, as the Evaluator's baseline: components/model_baseline.py), its
  blessing and that push; nothing before the first push.
- `ServedModelInferrer` is TFX's BulkInferrer: the open complaints through the
  model's `serving_default` signature (parse, Transform, model: what serving
  runs), written as examples with `dispute_probability` added. TFX's executor
  skips an unblessed model itself; it is also skipped here when nothing is
  served yet (TFX's would fail on the missing model).
- `ScoredComplaints` writes `scores.csv` (complaint id, probability, rank,
  model version, status) and records what the run summary and report show.
"""

# No `from __future__ import annotations`: TFX reads the typehints at runtime.
import csv
import io
import json
import math
import os

from absl import logging
from tfx import types
from tfx.components.bulk_inferrer import component as bulk_inferrer_component
from tfx.components.bulk_inferrer import executor as bulk_inferrer_executor
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common import resolver
from tfx.proto import bulk_inferrer_pb2
from tfx.types import artifact, artifact_utils, standard_artifacts

from components import artifact_properties as props
from components import model_baseline
from data import prepare
from models import signature_names

SCORES_FILE = "scores.csv"
SCORE_COLUMNS = ("complaint_id", "dispute_probability", "rank", "model_version", "status")
SCORED = "scored"
NOT_SCORABLE = f"not scorable yet: company response {' / '.join(prepare.OPEN_RESPONSES)}"
# ScoredComplaints' record of a run's scoring (JSON; read by reporting/).
SCORING_PROPERTY = "scoring"
# The split ExampleGen writes the open complaints to (pipeline/pipeline.py).
OPEN_SPLIT = "open"
# The deciles the summary states (0 and 100: the lowest and highest score).
PERCENTILES = (0, 10, 50, 90, 100)


class ComplaintScores(artifact.Artifact):
    """`scores.csv`: every open complaint of a span, scored or not scorable yet."""

    # KFP v2 imports custom types by this name: components/__init__.py exports it.
    TYPE_NAME = "components.ComplaintScores"


class ServedModelStrategy(resolver.ResolverStrategy):
    """Resolves `model`, `model_blessing` and `pushed_model` to the model TF
    Serving serves, its blessing and its push; empty lists before any push."""

    def resolve_artifacts(
        self, store, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        del store  # everything needed is in the input channels
        keys = (model_baseline.MODEL_KEY, model_baseline.BLESSING_KEY, model_baseline.PUSHED_KEY)
        pushes = input_dict[model_baseline.PUSHED_KEY]
        served_id = model_baseline.served_model_id(pushes)
        models = {m.id: m for m in input_dict[model_baseline.MODEL_KEY]}
        blessings = model_baseline.blessings_by_model(input_dict[model_baseline.BLESSING_KEY])
        if served_id not in models or served_id not in blessings:
            return dict.fromkeys(keys, [])
        newest_push = max(
            (
                p
                for p in pushes
                if p.get_int_custom_property(props.PUSHED) == 1
                and p.get_int_custom_property(props.PUSHED_MODEL_ID) == served_id
            ),
            key=lambda p: p.id,
        )
        resolved = ([models[served_id]], [blessings[served_id]], [newest_push])
        return dict(zip(keys, resolved, strict=True))


class _Executor(bulk_inferrer_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        if not input_dict.get("model"):
            logging.info("No model is served yet: nothing to score.")
            return
        super().Do(input_dict, output_dict, exec_properties)


class ServedModelInferrer(bulk_inferrer_component.BulkInferrer):
    """TFX's BulkInferrer, skipping cleanly when no model is served yet."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(_Executor)

    def __init__(self, examples, model, model_blessing):
        prediction = signature_names.PREDICTION_KEY
        super().__init__(
            examples=examples,
            model=model,
            model_blessing=model_blessing,
            data_spec=bulk_inferrer_pb2.DataSpec(example_splits=[OPEN_SPLIT]),
            model_spec=bulk_inferrer_pb2.ModelSpec(
                model_signature_name=[signature_names.DEFAULT_SIGNATURE]
            ),
            output_example_spec=bulk_inferrer_pb2.OutputExampleSpec(
                output_columns_spec=[
                    bulk_inferrer_pb2.OutputColumnsSpec(
                        predict_output=bulk_inferrer_pb2.PredictOutput(
                            output_columns=[
                                bulk_inferrer_pb2.PredictOutputCol(
                                    output_key=prediction, output_column=prediction
                                )
                            ]
                        )
                    )
                ]
            ),
        )


def _value(feature) -> str | float | None:
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else []
    if not values:
        return None
    value = values[0]
    return value.decode() if isinstance(value, bytes) else value


def read_scored(examples_uri: str) -> list[dict]:
    """(complaint id, company response, probability) of each scored example."""
    import tensorflow as tf

    files = tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{OPEN_SPLIT}", "*"))
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        feature = tf.train.Example.FromString(record).features.feature
        values = {
            name: _value(feature[name]) if name in feature else None
            for name in (prepare.ID_COLUMN, "company_response", signature_names.PREDICTION_KEY)
        }
        rows.append(values)
    return rows


def rank(rows: list[dict], model_version: str) -> list[dict]:
    """The CSV's rows: scorable complaints by falling probability (rank 1 the
    most likely dispute, ties by complaint id), then those not scorable yet."""
    probability = signature_names.PREDICTION_KEY
    scorable = [r for r in rows if r["company_response"] not in prepare.OPEN_RESPONSES]
    waiting = [r for r in rows if r["company_response"] in prepare.OPEN_RESPONSES]
    scorable.sort(key=lambda r: (-float(r[probability]), str(r[prepare.ID_COLUMN])))
    ranked = [
        {
            "complaint_id": r[prepare.ID_COLUMN],
            "dispute_probability": f"{float(r[probability]):.6f}",
            "rank": i,
            "model_version": model_version,
            "status": SCORED,
        }
        for i, r in enumerate(scorable, 1)
    ]
    ranked += [
        {
            "complaint_id": r[prepare.ID_COLUMN],
            "dispute_probability": "",
            "rank": "",
            "model_version": "",
            "status": NOT_SCORABLE,
        }
        for r in sorted(waiting, key=lambda r: str(r[prepare.ID_COLUMN]))
    ]
    return ranked


def describe(ranked: list[dict]) -> dict:
    """How many were scored, the score distribution, the top decile."""
    scores = [float(r["dispute_probability"]) for r in ranked if r["status"] == SCORED]
    found: dict = {"scored": len(scores), "not_scorable": len(ranked) - len(scores)}
    if scores:
        ascending = sorted(scores)
        found["percentiles"] = {
            str(p): round(ascending[min(len(ascending) - 1, p * len(ascending) // 100)], 6)
            for p in PERCENTILES
        }
        top = scores[: math.ceil(len(scores) / 10)]  # `ranked` is by falling score
        found["mean_probability"] = round(sum(scores) / len(scores), 6)
        found["top_decile"] = {
            "complaints": len(top),
            "lowest_probability": round(min(top), 6),
            "mean_probability": round(sum(top) / len(top), 6),
        }
    return found


@component
def ScoredComplaints(
    open_examples: InputArtifact[standard_artifacts.Examples],
    scored_examples: InputArtifact[standard_artifacts.Examples],
    scores: OutputArtifact[ComplaintScores],
    pushed_model: InputArtifact[standard_artifacts.PushedModel] = None,
) -> None:
    from tfx.utils import io_utils

    record = {"span": open_examples.get_int_custom_property(props.SPAN)}
    ranked: list[dict] = []
    # BulkInferrer names the splits it scored; none when it had no model.
    if not artifact_utils.decode_split_names(scored_examples.split_names):
        record["skipped"] = "no model is served yet"
    else:
        # The pushed version; unknown where TFX's latest blessed model was
        # resolved instead of the served one (pipeline/pipeline.py).
        version = (
            pushed_model.get_string_custom_property(props.PUSHED_VERSION) if pushed_model else ""
        )
        record["model_version"] = version or "latest blessed"
        ranked = rank(read_scored(scored_examples.uri), version)
        record.update(describe(ranked))
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=SCORE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(ranked)
    io_utils.write_string_file(os.path.join(scores.uri, SCORES_FILE), out.getvalue())
    scores.set_string_custom_property(SCORING_PROPERTY, json.dumps(record, sort_keys=True))
