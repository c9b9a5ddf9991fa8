"""Reading TFMA's metrics: which slices can be scored, and the confusion
matrix behind a slice's precision and recall (the Evaluator's real output is
read by the report and card tests)."""

from components import evaluation_files

SLICE = {
    "example_count": 300.0,
    "mean_label": 0.2,
    "auc": 0.6,
    "precision": 0.25,
    "recall": 0.5,
}


def test_a_slice_too_small_or_of_one_class_is_not_scored():
    assert evaluation_files.unscorable(SLICE) is None
    assert evaluation_files.unscorable({**SLICE, "example_count": 3.0}) == (
        "3 rows: too few to score (under 50)"
    )
    # TFMA writes AUC 0 for a slice without a dispute: not a score.
    assert evaluation_files.unscorable({**SLICE, "mean_label": 0.0, "auc": 0.0}) == (
        "300 rows, all not disputed: AUC undefined"
    )


def test_the_confusion_matrix_gives_back_the_rates_it_came_from():
    matrix = evaluation_files.confusion_matrix(SLICE)
    # 60 disputed rows, half found; 30 found of 120 flagged.
    assert (matrix.true_positives, matrix.false_negatives) == (30, 30)
    assert (matrix.false_positives, matrix.true_negatives) == (90, 150)
    assert matrix.true_positives / matrix.predicted_positives == SLICE["precision"]
    assert evaluation_files.confusion_matrix({**SLICE, "mean_label": float("nan")}) is None
