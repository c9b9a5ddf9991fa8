"""Private training in the graph: the Trainer records the epsilon its model
spent on the Model artifact, and the Evaluator refuses to bless a model over
the privacy budget (docs/privacy.md).

- `Trainer`: TFX's Trainer whose executor, after `run_fn`
  (models/model.py) has trained, copies the accounting `run_fn` wrote beside
  the model run (models/private_training.py) onto the Model artifact:
  `dp_epsilon` (a number ML Metadata can be queried by) and
  `privacy_accounting` (every number epsilon is computed from, as JSON). A
  model without them was trained without differential privacy. It copies
  what training did (`training`: steps run and kept, early stopping) too:
  with epsilon, what the run summary states about how the model was made.
- `Evaluator`: TFX's Evaluator with one more parameter, `max_epsilon`. TFMA
  evaluates as always (the report shows the metrics of a refused model too);
  then a model whose epsilon is above the budget, or that has none, is
  written NOT blessed, with the one-line reason in `privacy_refused`. The
  budget is enforced where the blessing is made, so the Pusher of every
  runner (Beam, Airflow, each Kubeflow task) and the baseline resolver see a
  model that is simply not blessed.
"""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.trainer import component as trainer_component
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, component_spec, standard_artifacts, standard_component_specs
from tfx.utils import io_utils, json_utils

from components import artifact_properties
from models import model as pipeline_model
from models import private_training

MAX_EPSILON_KEY = private_training.MAX_EPSILON_KEY


def accounting(model: types.Artifact) -> dict[str, Any] | None:
    """The privacy accounting recorded on a Model artifact; None: not private."""
    return private_training.parse_accounting(
        model.get_string_custom_property(artifact_properties.PRIVACY_ACCOUNTING)
    )


class TrainerExecutor(trainer_executor.GenericExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        model_run = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.MODEL_RUN_KEY]
        )
        model = artifact_utils.get_single_instance(output_dict[standard_component_specs.MODEL_KEY])
        training = os.path.join(model_run.uri, pipeline_model.FIT_TIME_FILE)
        if fileio.exists(training):
            with fileio.open(training) as f:
                model.set_string_custom_property(artifact_properties.TRAINING, f.read())
        record = private_training.read_accounting(model_run.uri)
        if record is None:
            return
        model.set_float_custom_property(artifact_properties.DP_EPSILON, record["epsilon"])
        model.set_string_custom_property(
            artifact_properties.PRIVACY_ACCOUNTING, json.dumps(record, sort_keys=True)
        )


class Trainer(trainer_component.Trainer):
    """TFX's Trainer; its model carries what its training did, and its
    privacy accounting when private."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(TrainerExecutor)


class EvaluatorExecutor(evaluator_executor.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        max_epsilon = exec_properties.get(MAX_EPSILON_KEY)
        if max_epsilon is None:
            return
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        refusal = private_training.over_budget(accounting(model), float(max_epsilon))
        if refusal is None:
            return
        logging.warning("Not blessed: %s", refusal)
        blessing = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.BLESSING_KEY]
        )
        blessing.set_string_custom_property(artifact_properties.PRIVACY_REFUSED, refusal)
        blessed_file = os.path.join(blessing.uri, evaluator_constants.BLESSED_FILE_NAME)
        if fileio.exists(blessed_file):
            fileio.remove(blessed_file)
        io_utils.write_string_file(
            os.path.join(blessing.uri, evaluator_constants.NOT_BLESSED_FILE_NAME), ""
        )
        blessing.set_int_custom_property(
            artifact_properties.BLESSED, evaluator_constants.NOT_BLESSED_VALUE
        )


class EvaluatorSpec(standard_component_specs.EvaluatorSpec):
    """TFX's Evaluator parameters, plus the privacy budget."""

    PARAMETERS = {
        **standard_component_specs.EvaluatorSpec.PARAMETERS,
        MAX_EPSILON_KEY: component_spec.ExecutionParameter(type=float, optional=True),
    }


class Evaluator(evaluator_component.Evaluator):
    """TFX's Evaluator that also blesses only models within the privacy budget."""

    SPEC_CLASS = EvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(EvaluatorExecutor)

    def __init__(
        self,
        examples: types.BaseChannel,
        model: types.BaseChannel,
        eval_config: Any,
        example_splits: list[str],
        baseline_model: types.BaseChannel | None = None,
        max_epsilon: float | None = None,
    ):
        spec = EvaluatorSpec(
            examples=examples,
            model=model,
            baseline_model=baseline_model,
            eval_config=eval_config,
            example_splits=json_utils.dumps(example_splits),
            max_epsilon=max_epsilon,
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
        )
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
