"""The views of the quasi-identifiers the minimization table compares."""

import numpy as np

from bench import bare_keras, examples, minimization
from models import features

COLUMNS = {
    **{name: np.array(["a", "b", "a"]) for name in examples.TEXT},
    **{
        name: np.array(["2015-01-02", "2015-01-05", "2015-01-09"])
        for name in features.DATE_INPUT_NAMES
    },
    "zip_code": np.array([94110, 2134, -1]),
    "state": np.array(["CA", "MA", ""]),
}
VIEWS = dict(minimization.VARIANTS)


def test_the_first_view_is_the_pipelines_own_columns():
    name, view = minimization.VARIANTS[0]
    assert "the pipeline today" in name and view(COLUMNS) is COLUMNS


def test_zip_codes_are_cut_to_their_leading_digits_and_missing_stays_missing():
    coarse = VIEWS["state + 3-digit ZIP"](COLUMNS)
    assert coarse["zip_code"].tolist() == [94100, 2100, -1]
    assert VIEWS["state + 1-digit ZIP"](COLUMNS)["zip_code"].tolist() == [90000, 0, -1]


def test_a_withheld_feature_is_missing_in_every_row_and_nothing_else_changes():
    view = VIEWS["neither state nor ZIP"](COLUMNS)
    assert view["zip_code"].tolist() == [-1, -1, -1] and view["state"].tolist() == ["", "", ""]
    assert all(view[n] is COLUMNS[n] for n in COLUMNS if n not in ("state", "zip_code"))
    # The bare model's preprocessing gives a withheld ZIP one index: "missing".
    indices = bare_keras.transform(view, view)
    assert set(indices["zip_code_xf"].tolist()) == {0}
    assert len(set(indices["zip_region_xf"].tolist())) == 1  # derived from the ZIP: withheld too
    assert len(set(indices["state_xf"].tolist())) == 1
