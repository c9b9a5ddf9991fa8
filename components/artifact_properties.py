"""Names of the properties TFX records on the artifacts this project reads,
stated once.

TFX defines them in modules that import TensorFlow (the Evaluator's and the
Pusher's executors, ExampleGen's utils); the readers (run summary, run
history, report, skew, the validation gate) take them from here instead, and
tests/components/test_artifact_properties.py pins each to TFX's own constant.
"""

# Examples (tfx.components.example_gen.utils.SPAN_PROPERTY_NAME) and every
# split artifact (tfx.types.standard_artifacts: `split_names`).
SPAN = "span"
SPLIT_NAMES = "split_names"
# ModelBlessing (tfx.components.evaluator.constants: ARTIFACT_PROPERTY_*_KEY).
BLESSED = "blessed"
BASELINE_MODEL_URI = "baseline_model"
BASELINE_MODEL_ID = "baseline_model_id"
# PushedModel (tfx.components.pusher.executor: _PUSHED_*KEY).
PUSHED = "pushed"
PUSHED_DESTINATION = "pushed_destination"
PUSHED_VERSION = "pushed_version"
# This project's Pusher (components/idempotent_pusher.py): 1 when the served
# version already was this model, so nothing was copied.
REUSED_VERSION = "reused_existing_version"
# ...the id of the Model it pushed (what the baseline resolver reads as the
# served model, components/model_baseline.py), and, when it refused to push,
# why (the served model is no longer the one the candidate was compared with).
PUSHED_MODEL_ID = "pushed_model_id"
PUSH_REFUSED = "push_refused"
# This project's DataValidation (components/validation_gate.py): the span it
# passed (SPAN above) and the URI of that span's statistics, the drift
# baseline of later spans.
STATISTICS_URI = "statistics_uri"
# This project's Trainer (components/private_training.py), on a Model trained
# with DP-SGD: its epsilon, and every number it is computed from (JSON).
DP_EPSILON = "dp_epsilon"
PRIVACY_ACCOUNTING = "privacy_accounting"
# ...and, on every Model, what its training did (models.model.fit's record,
# JSON): steps run, the step whose weights were kept, its validation loss.
TRAINING = "training"
# ...and its Evaluator, on a ModelBlessing it refused over the privacy budget: why.
PRIVACY_REFUSED = "privacy_refused"
