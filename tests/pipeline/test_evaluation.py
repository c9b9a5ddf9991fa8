from pipeline import evaluation
from settings.configs import PipelineConfig


def _auc_config(eval_config):
    return next(
        m for spec in eval_config.metrics_specs for m in spec.metrics if m.class_name == "AUC"
    )


def test_auc_floor_and_no_regression_bound_apply_to_the_overall_slice_only():
    auc = _auc_config(evaluation.eval_config(PipelineConfig(min_auc=0.61, max_auc_regression=0.01)))
    assert not auc.HasField("threshold")
    (per_slice,) = auc.per_slice_thresholds
    assert [str(s) for s in per_slice.slicing_specs] == [""]  # the overall slice
    assert per_slice.threshold.value_threshold.lower_bound.value == 0.61
    assert per_slice.threshold.change_threshold.absolute.value == -0.01


def test_an_equal_model_is_not_a_regression_but_any_drop_is():
    auc = _auc_config(evaluation.eval_config(PipelineConfig(max_auc_regression=0.0)))
    bound = auc.per_slice_thresholds[0].threshold.change_threshold.absolute.value
    assert -1e-9 < bound < 0


def test_metrics_and_slices():
    config = evaluation.eval_config(PipelineConfig())
    names = {m.class_name for spec in config.metrics_specs for m in spec.metrics}
    assert {"AUC", "Precision", "Recall", "Calibration", "ExampleCount"} <= names
    assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ["product"], ["state"]]
    assert config.model_specs[0].label_key == "consumer_disputed"


def test_without_a_baseline_only_the_floor_applies():
    auc = _auc_config(evaluation.eval_config(PipelineConfig(compare_with_baseline=False)))
    threshold = auc.per_slice_thresholds[0].threshold
    assert threshold.HasField("value_threshold") and not threshold.HasField("change_threshold")


def test_precision_recall_and_accuracy_are_measured_at_the_operating_threshold():
    import json

    config = evaluation.eval_config(PipelineConfig(decision_threshold=0.3))
    by_class = {m.class_name: m for spec in config.metrics_specs for m in spec.metrics}
    assert json.loads(by_class["Precision"].config) == {"thresholds": [0.3]}
    assert json.loads(by_class["Recall"].config) == {"thresholds": [0.3]}
    assert json.loads(by_class["BinaryAccuracy"].config) == {"threshold": 0.3}
    assert "ConfusionMatrixPlot" in by_class  # the report's ROC and PR curves
