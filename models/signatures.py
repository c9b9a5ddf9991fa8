"""Serving signatures: raw complaints in, dispute probability out.

Every signature applies the saved Transform graph before the model, so clients
send raw values and never re-implement preprocessing:

- `serving_default` takes serialized `tf.Example`s (`examples`) and returns
  `dispute_probability`: TF Serving's predict API, and what TFMA's Evaluator
  sends;
- `serving_raw` takes one string/int tensor per raw feature, which is what a
  JSON client sends to TF Serving's REST predict API;
- `classification` and `regression` have the shapes TF Serving's classify and
  regress APIs require (one serialized-`tf.Example` input named `inputs`;
  `classes` + `scores`, or `outputs`), as TF Estimator exported for binary
  classifiers. TF2 saves every signature with the predict method name; TF
  Serving accepts that unless it runs with `--enable_signature_method_name_check`.

Missing values follow the data contract (data/schema.py) in every signature:
the schema's required values (product, company_response, timely_response,
date_received and date_sent_to_company, dates as YYYY-MM-DD) must be given
and non-empty, or the request is refused with the feature's
name (the model never saw them missing, so an answer would be a guess); the
other features may be left out of a tf.Example or sent as '' (0 for a ZIP
code) to serving_raw, and then mean "not given", like an empty CSV cell.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models import features, signature_names
from models.signature_names import (
    CLASSIFICATION_SIGNATURE,
    CLASSIFY_CLASSES,
    CLASSIFY_INPUTS,
    CLASSIFY_SCORES,
    EXAMPLES_INPUT,
    PREDICTION_KEY,
    RAW_SIGNATURE,
    REGRESS_INPUTS,
    REGRESS_OUTPUTS,
    REGRESSION_SIGNATURE,
)


def raw_feature_spec(
    tf_transform_output: tft.TFTransformOutput,
) -> dict[str, tf.io.FixedLenFeature]:
    """Parsing spec of the model's raw inputs, typed as Transform saw them.

    Only the feature spec's raw inputs: a client need not send the label or
    columns the model does not use.
    """
    spec = tf_transform_output.raw_feature_spec()
    return {name: spec[name] for name in features.RAW_INPUT_NAMES}


def _required_checks(raw_features: dict[str, tf.Tensor], spec) -> list:
    """Refuses an empty required value (parse_example already refuses an absent
    one) and a date not written `YYYY-MM-DD` (Transform would read its digits
    wrongly or fail on them).

    Transform's raw feature spec has a FixedLenFeature exactly where the schema
    requires a value in every row.
    """
    checks = [
        tf.debugging.assert_greater(
            tf.strings.length(raw_features[name]),
            0,
            message=f"{name} is required: every complaint must give it (data/schema.py)",
        )
        for name, feature_spec in spec.items()
        if isinstance(feature_spec, tf.io.FixedLenFeature) and feature_spec.dtype == tf.string
    ]
    return checks + [
        tf.debugging.Assert(
            tf.reduce_all(tf.strings.regex_full_match(raw_features[name], features.DATE_PATTERN)),
            [f"{name} must be a date written YYYY-MM-DD"],
        )
        for name in features.DATE_INPUT_NAMES
    ]


def _as_transform_input(value: tf.Tensor, spec) -> tf.Tensor:
    """Turns a dense [batch] tensor into what the Transform graph expects."""
    column = tf.expand_dims(value, -1)
    if isinstance(spec, tf.io.VarLenFeature):
        # from_dense drops '' and 0 entries: they become missing values.
        return tf.sparse.from_dense(column)
    return column


def serving_signatures(
    model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    # Attached to the model so its vocabularies are saved as the model's assets.
    model.tft_layer = tf_transform_output.transform_features_layer()
    spec = raw_feature_spec(tf_transform_output)

    def predict(raw_features):
        with tf.control_dependencies(_required_checks(raw_features, spec)):
            # Transform reads the dense inputs only once they passed the
            # checks: a malformed date would otherwise fail Transform's own
            # parse first, with a message that names no feature.
            checked = {
                name: tf.identity(value) if isinstance(value, tf.Tensor) else value
                for name, value in raw_features.items()
            }
            transformed = model.tft_layer(checked)
            model_inputs = {
                features.transformed_name(name): transformed[features.transformed_name(name)]
                for name in features.MODEL_FEATURE_NAMES
            }
            return {PREDICTION_KEY: tf.identity(model(model_inputs))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_tf_examples(examples):
        return predict(tf.io.parse_example(examples, spec))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=CLASSIFY_INPUTS)])
    def classify_tf_examples(inputs):
        positive = predict(tf.io.parse_example(inputs, spec))[PREDICTION_KEY]
        scores = tf.concat([1.0 - positive, positive], axis=1)
        classes = tf.tile(tf.constant([features.LABEL_CLASSES]), [tf.shape(scores)[0], 1])
        return {CLASSIFY_CLASSES: classes, CLASSIFY_SCORES: scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=REGRESS_INPUTS)])
    def regress_tf_examples(inputs):
        return {REGRESS_OUTPUTS: predict(tf.io.parse_example(inputs, spec))[PREDICTION_KEY]}

    @tf.function(
        input_signature=[
            {
                name: tf.TensorSpec([None], feature_spec.dtype, name=name)
                for name, feature_spec in spec.items()
            }
        ]
    )
    def serve_raw(raw):
        return predict({name: _as_transform_input(raw[name], spec[name]) for name in spec})

    return {
        signature_names.DEFAULT_SIGNATURE: serve_tf_examples.get_concrete_function(),
        RAW_SIGNATURE: serve_raw.get_concrete_function(),
        CLASSIFICATION_SIGNATURE: classify_tf_examples.get_concrete_function(),
        REGRESSION_SIGNATURE: regress_tf_examples.get_concrete_function(),
    }
