import re

from tracking import run_record

# MLflow's rule for metric and parameter names (mlflow/utils/validation.py).
MLFLOW_NAME = re.compile(r"^[/\w.\- :]*$")


def test_slice_names_become_metric_names_mlflow_accepts():
    name = run_record.name("eval", "product:Payday loan, title loan, or personal loan", "auc")
    assert name == "eval/product:Payday loan_ title loan_ or personal loan/auc"
    assert MLFLOW_NAME.match(name)
    assert run_record.name("drift", "state") == "drift/state"
    # No leading slash or empty part: MLflow refuses names that are not unique paths.
    assert run_record.name("", "/rows/", "train") == "rows/train"


def test_report_setting_labels_become_parameter_names_a_filter_can_type():
    assert run_record.param_name("privacy budget (max epsilon)") == "privacy_budget_max_epsilon"
    assert run_record.param_name("train args (steps)") == "train_args_steps"
    assert run_record.param_name("learning rate") == "learning_rate"
    assert run_record.param_name("AUC floor (blessing)") == "AUC_floor_blessing"
