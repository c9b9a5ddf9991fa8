"""The report's SVG charts as markup (tests/reporting/test_report.py reads
them laid out in Chromium)."""

import re

from reporting import charts


def test_long_category_names_are_cut_with_an_ellipsis_and_kept_whole_in_the_tooltip():
    name = "Credit reporting, credit repair services, or other personal consumer reports"
    svg = charts.bar_chart("product", [charts.Bar(name, {"this span": 0.4})])
    label = re.search(r'<text class="label"[^>]*>(.*?)</text>', svg).group(1)
    assert f"<title>{name}</title>" in label
    assert label.endswith("\u2026") and len(label.split("</title>")[1]) == charts.LABEL_CHARS
    assert f'data-full="{name}"' in svg


def test_every_bar_carries_its_value_and_an_unscored_row_its_reason():
    svg = charts.bar_chart(
        "AUC by state",
        [
            charts.Bar("CA", {"candidate": 0.61, "baseline": 0.58}, "400 rows"),
            charts.Bar("WY", {}, "3 rows", unscored="too few to score"),
        ],
        scale_max=1.0,
        rules=[charts.Rule(0.5, "coin flip 0.5"), charts.Rule(0.55, "floor 0.55")],
    )
    assert svg.count('<rect class="bar"') == 2
    assert re.findall(r'<text class="value"[^>]*>([^<]*)</text>', svg) == ["0.610", "0.580"]
    assert '<text class="unscored"' in svg and "too few to score" in svg
    assert re.findall(r'<line class="rule" data-value="([^"]*)"', svg) == ["0.5", "0.55"]
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', svg)
    assert ticks == ["0.000", "0.250", "0.500", "0.750", "1.000"]


def test_an_axis_ends_at_a_round_number_above_the_largest_bar():
    assert charts._round_up(0.823) == 1.0
    assert charts._round_up(0.179) == 0.2
    assert charts._round_up(0.031) == 0.05


def test_a_curve_has_axis_labels_its_operating_point_and_a_level():
    svg = charts.line_chart(
        "Precision against recall",
        "recall",
        "precision",
        [charts.Line("candidate", [(0, 1), (0.5, 0.3), (1, 0.2)], (0.5, 0.3), "threshold 0.2")],
        level=(0.2, "base rate 20.0%"),
    )
    assert re.findall(r'class="axis-label"[^>]*>([^<]*)<', svg) == ["recall", "precision"]
    assert '<circle class="operating-point"' in svg and "threshold 0.2" in svg
    assert 'class="level" data-value="0.2000"' in svg and "base rate 20.0%" in svg
