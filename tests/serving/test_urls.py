"""TF Serving REST URLs: the exact paths, and the book's mistakes impossible."""

import pytest

from serving import urls


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, "/v1/models/cfpb_disputes:predict"),
        ({"version": 3}, "/v1/models/cfpb_disputes/versions/3:predict"),
        ({"label": "stable"}, "/v1/models/cfpb_disputes/labels/stable:predict"),
    ],
)
def test_predict_paths(kwargs, expected):
    assert urls.verb_path("predict", "cfpb_disputes", **kwargs) == expected


def test_classify_regress_and_metadata_paths():
    assert urls.verb_path("classify", "m", label="canary") == "/v1/models/m/labels/canary:classify"
    assert urls.verb_path("regress", "m", version=0) == "/v1/models/m/versions/0:regress"
    assert urls.metadata_path("m") == "/v1/models/m/metadata"
    assert urls.metadata_path("m", version=7) == "/v1/models/m/versions/7/metadata"


def test_no_empty_path_segments_anywhere():
    for path in (
        urls.verb_path("predict", "m"),
        urls.metadata_path("m"),
        urls.metadata_path("m", label="stable"),
        urls.model_path("m", version=1),
    ):
        assert "//" not in path and "/:" not in path and not path.endswith("/")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model_name": ""},
        {"model_name": "a/b"},
        {"model_name": "m:predict"},
        {"model_name": "m", "version": 1, "label": "stable"},
        {"model_name": "m", "version": -1},
        {"model_name": "m", "version": "3"},
        {"model_name": "m", "version": True},
        {"model_name": "m", "label": "a/b"},
    ],
)
def test_rejects_what_cannot_be_a_url(kwargs):
    with pytest.raises(urls.UrlError):
        urls.model_path(**kwargs)


def test_rejects_unknown_verbs():
    with pytest.raises(urls.UrlError, match="one of predict, classify, regress"):
        urls.verb_path("metadata", "m")
