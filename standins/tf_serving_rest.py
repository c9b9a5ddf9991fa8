"""DEVELOPMENT STAND-IN for TF Serving's REST codec: REST JSON turned into
tensors and back as TF Serving does it.

Follows TF Serving's REST API reference (json_tensor.cc): the predict API
takes `instances` (row format: one value, or one object of named values, per
example) or `inputs` (columnar); strings are JSON strings and binary values
`{"b64": ...}`; the reply is `predictions` (row) or `outputs` (columnar), one
plain value per example when the signature has a single output. The classify
and regress APIs take `examples` (objects of feature values, merged with an
optional `context`), encode each as a `tf.Example` (JSON string -> bytes, integer
-> int64, number with a fraction -> float) and reply `{"result": ...}`.

Used by the tests to prove a REST request reaches the model intact, and by the
development stand-in server (standins/tf_serving.py); the product's client
speaks the same format to the real server.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2


class RequestError(ValueError):
    """A request TF Serving would reject with HTTP 400 (INVALID_ARGUMENT)."""


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise RequestError(
                f'JSON object {value!r} is not a value; binary values are {{"b64": "<base64>"}}'
            )
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _tensor(name: str, values: Any, info: meta_graph_pb2.TensorInfo) -> np.ndarray:
    dtype = tf.dtypes.as_dtype(info.dtype)
    values = _decode(values)
    try:
        if dtype == tf.string:
            array = np.array(values, dtype=object)
            if not all(isinstance(v, (str, bytes)) for v in array.ravel()):
                raise TypeError("not a string")
            return np.vectorize(lambda v: v.encode() if isinstance(v, str) else v, otypes=[object])(
                array
            )
        array = np.array(values)
        if array.dtype == object or array.dtype.kind in "USb":
            raise TypeError("not a number")
        if dtype.is_integer and array.dtype.kind == "f":
            raise TypeError("not an integer")
        return array.astype(dtype.as_numpy_dtype)
    except (TypeError, ValueError) as error:
        raise RequestError(
            f"input {name!r}: {values!r} is not of type {dtype.name} ({error})"
        ) from error


def _named(value: Any, names: list[str]) -> Any:
    """A single-input signature also takes the bare value instead of {name: value}."""
    if len(names) == 1 and not (isinstance(value, dict) and set(value) == set(names)):
        return {names[0]: value}
    return value


def predict_inputs(
    body: Mapping[str, Any], signature: meta_graph_pb2.SignatureDef
) -> dict[str, np.ndarray]:
    """The predict request's tensors, keyed by the signature's input names."""
    names = sorted(signature.inputs)
    if ("instances" in body) == ("inputs" in body):
        raise RequestError("a predict request has exactly one of 'instances' or 'inputs'")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError("'instances' must be a non-empty list")
        rows = [_named(row, names) for row in instances]
        columns: dict[str, list] = {}
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or set(row) != set(names):
                got = sorted(row) if isinstance(row, dict) else type(row).__name__
                raise RequestError(f"instance {i} has inputs {got}, the signature takes {names}")
            for name in names:
                columns.setdefault(name, []).append(row[name])
    else:
        inputs = body["inputs"]
        columns = _named(inputs, names)
        if not isinstance(columns, dict):
            raise RequestError(f"'inputs' must be an object of {names}")
        if set(columns) != set(names):
            raise RequestError(f"'inputs' has {sorted(columns)}, the signature takes {names}")
    return {name: _tensor(name, columns[name], signature.inputs[name]) for name in names}


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_array(array: np.ndarray) -> Any:
    return _json_value(array) if array.ndim == 0 else [_json_array(a) for a in array]


def predict_reply(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    """`{"predictions": ...}` or `{"outputs": ...}` for the signature's outputs."""
    names = sorted(outputs)
    if not row_format:
        columns = {n: _json_array(np.asarray(outputs[n])) for n in names}
        return {"outputs": columns[names[0]] if len(names) == 1 else columns}
    rows = []
    for i in range(len(next(iter(outputs.values())))):
        row = {n: _json_array(np.asarray(outputs[n][i])) for n in names}
        rows.append(row[names[0]] if len(names) == 1 else row)
    return {"predictions": rows}


def _feature(name: str, value: Any) -> tf.train.Feature:
    values = _decode(value if isinstance(value, list) else [value])
    if all(isinstance(v, (str, bytes)) for v in values):
        return tf.train.Feature(
            bytes_list=tf.train.BytesList(
                value=[v.encode() if isinstance(v, str) else v for v in values]
            )
        )
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    raise RequestError(f"feature {name!r}: {value!r} mixes types or is not a string/number")


def examples(body: Mapping[str, Any]) -> list[bytes]:
    """Serialized tf.Examples of a classify/regress request (`context` merged in)."""
    rows = body.get("examples")
    if not isinstance(rows, list) or not rows:
        raise RequestError("a classify/regress request needs a non-empty 'examples' list")
    context = body.get("context", {})
    serialized = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError(f"example {i} is not a JSON object of feature values")
        merged = {**context, **row}
        serialized.append(
            tf.train.Example(
                features=tf.train.Features(feature={k: _feature(k, v) for k, v in merged.items()})
            ).SerializeToString()
        )
    return serialized


def classify_reply(classes: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """`{"result": [[[class, score], ...], ...]}`, one list per example."""
    return {
        "result": [
            [[_json_value(c), float(s)] for c, s in zip(row_classes, row_scores, strict=True)]
            for row_classes, row_scores in zip(classes, scores, strict=True)
        ]
    }


def regress_reply(values: np.ndarray) -> dict[str, Any]:
    return {"result": [float(v) for v in np.asarray(values).reshape(len(values), -1)[:, 0]]}
