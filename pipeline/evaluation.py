"""The Evaluator's TFMA config: which metrics, which slices, what blesses a model."""

from __future__ import annotations

import json

import tensorflow_model_analysis as tfma
from google.protobuf.wrappers_pb2 import BoolValue

from models import features, signature_names
from settings.configs import GraphSettings

SLICE_FEATURES = ("product", "state")
BLESSING_METRIC = "AUC"


def eval_config(config: GraphSettings) -> tfma.EvalConfig:
    """Metrics overall and per product/state; AUC gates the blessing.

    TFMA blesses only models that pass every threshold, and blesses nothing
    without one, so AUC carries both: an absolute floor (`min_auc`) and a
    no-regression bound against the latest blessed model (the baseline). The
    first model has no baseline and is judged on the floor alone.

    The thresholds apply to the overall slice only: a threshold on the metric
    itself would apply to every slice, and a state with ten complaints and no
    dispute (AUC undefined, reported as 0) would veto every model.
    """
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.min_auc})
    )
    if config.compare_with_baseline:
        auc_threshold.change_threshold.CopyFrom(
            tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                # -1e-10 rather than 0: an identical model is not a regression.
                absolute={"value": -max(config.max_auc_regression, 1e-10)},
            )
        )
    operating_point = json.dumps({"thresholds": [config.decision_threshold]})
    return tfma.EvalConfig(
        # Only the metrics below: TFMA would also re-compute the model's Keras
        # compile metrics, whose `auc` clashes by name with TFMA's own.
        options=tfma.Options(include_default_metrics=BoolValue(value=False)),
        model_specs=[
            tfma.ModelSpec(
                signature_name=signature_names.DEFAULT_SIGNATURE, label_key=features.LABEL_KEY
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[name]) for name in SLICE_FEATURES],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    # The share disputed: the base rate a precision is read
                    # against, and with precision and recall the confusion
                    # matrix at the operating threshold (components/evaluation_files.py).
                    tfma.MetricConfig(class_name="MeanLabel"),
                    tfma.MetricConfig(
                        class_name="AUC",
                        per_slice_thresholds=[
                            tfma.PerSliceMetricThreshold(
                                slicing_specs=[tfma.SlicingSpec()], threshold=auc_threshold
                            )
                        ],
                    ),
                    # At the operating threshold: at TFMA's default 0.5 a model of
                    # a ~17%-positive label flags almost nothing, and precision
                    # and recall there say nothing.
                    tfma.MetricConfig(class_name="Precision", config=operating_point),
                    tfma.MetricConfig(class_name="Recall", config=operating_point),
                    tfma.MetricConfig(
                        class_name="BinaryAccuracy",
                        config=json.dumps({"threshold": config.decision_threshold}),
                    ),
                    tfma.MetricConfig(class_name="Calibration"),
                    tfma.MetricConfig(class_name="CalibrationPlot"),
                    # ROC and precision-recall curves (the run report draws them).
                    tfma.MetricConfig(class_name="ConfusionMatrixPlot"),
                ]
            )
        ],
    )
