"""TF Serving's REST URLs, built in one place.

    /v1/models/<name>[/versions/<N> | /labels/<label>][:predict|:classify|:regress|/metadata]

A version or a label, never both; no trailing slash before `:predict` and no
`//metadata` (both are common mistakes, and TF Serving answers them with 404).
"""

from __future__ import annotations

import re

VERBS = ("predict", "classify", "regress")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class UrlError(ValueError):
    """A model name, version or label that cannot be part of a TF Serving URL."""


def model_path(model_name: str, version: int | None = None, label: str | None = None) -> str:
    """`/v1/models/<name>`, pinned to a version or a label if given."""
    if not _NAME.match(model_name or ""):
        raise UrlError(f"model name {model_name!r}: use letters, digits, '_', '-', '.'")
    if version is not None and label is not None:
        raise UrlError("give a version or a label, not both")
    path = f"/v1/models/{model_name}"
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise UrlError(f"version {version!r}: TF Serving versions are non-negative integers")
        path += f"/versions/{version}"
    elif label is not None:
        if not _NAME.match(label):
            raise UrlError(f"label {label!r}: use letters, digits, '_', '-', '.'")
        path += f"/labels/{label}"
    return path


def verb_path(
    verb: str, model_name: str, version: int | None = None, label: str | None = None
) -> str:
    """`.../<name>[...]:predict` (or `:classify`, `:regress`)."""
    if verb not in VERBS:
        raise UrlError(f"verb {verb!r}: one of {', '.join(VERBS)}")
    return f"{model_path(model_name, version, label)}:{verb}"


def metadata_path(model_name: str, version: int | None = None, label: str | None = None) -> str:
    """`.../<name>[...]/metadata`: the model's signatures and the version serving them."""
    return f"{model_path(model_name, version, label)}/metadata"


def base_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"
