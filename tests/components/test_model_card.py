"""The model card: its intervals against known values, its fields, and its
page rendered by the Jinja2 template (the pushed version's card is read in
Chromium by tests/reporting/test_report.py)."""

import json

import pytest

from components import model_card

SLICE = {
    "example_count": 1000.0,
    "mean_label": 0.2,
    "auc": 0.7,
    "precision": 0.3,
    "recall": 0.6,
    "binary_accuracy": 0.65,
}


def test_wilson_interval_matches_the_textbook_example():
    # Wilson (1927) for 81 of 263 (Newcombe 1998, Stat Med 17:857, table I): 0.2553-0.3662.
    low, high = model_card.wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=1e-4) and high == pytest.approx(0.3662, abs=1e-4)


def test_hanley_mcneil_interval_shrinks_with_more_rows():
    narrow = model_card.auc_interval(0.7, 2000, 8000)
    wide = model_card.auc_interval(0.7, 20, 80)
    assert narrow[0] < 0.7 < narrow[1] and wide[0] < narrow[0] and narrow[1] < wide[1]
    # Their eq. 2 worked by hand for AUC 0.7, 20 positives, 80 negatives:
    # Q1 = 0.5385, Q2 = 0.5765, SE = sqrt(7.962 / 1600) = 0.0705.
    assert (wide[1] - wide[0]) / (2 * model_card.Z_95) == pytest.approx(0.0705, abs=5e-4)


def test_slices_that_cannot_be_scored_are_listed_as_limits_not_metrics():
    card = model_card.build(
        model_name="m",
        version="1700000000",
        date="2026-12-04",
        metrics={
            "overall": SLICE,
            "state:GA": {**SLICE, "example_count": 3.0},
            "state:WY": {**SLICE, "mean_label": 0.0},
        },
        spans=[20150319],
        data_location="/data",
        blessed=True,
        baseline=None,
        thresholds={"min_auc": 0.55, "max_auc_regression": 0.0, "decision_threshold": 0.2},
        code_version="abc",
    )
    slices = {m["slice"] for m in card["quantitative_analysis"]["performance_metrics"]}
    assert slices == {"overall"}
    limits = " ".join(x["description"] for x in card["considerations"]["limitations"])
    assert "state:GA (3 rows); state:WY (1,000 rows)" in limits
    recall = next(
        m for m in card["quantitative_analysis"]["performance_metrics"] if m["type"] == "recall"
    )
    # 120 of 200 disputed complaints found.
    assert recall["confidence_interval"]["lower_bound"] == pytest.approx(
        model_card.wilson_interval(120, 200)[0], abs=1e-4
    )
    assert (
        "passed the floor 0.55 (no model was served before"
        in (card["model_details"]["documentation"])
    )
    json.dumps(card)  # JSON as written
    page = model_card.render_html(card)
    assert "<script" not in page and "http://" not in page.split("</style>")[0]
    assert "1700000000" in page and "95% confidence intervals" in page
    assert page.count('<tr class="slice">') == 1  # one row per slice, its metrics across
