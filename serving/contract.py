"""What TF Serving requires of a SavedModel's signatures, checked before serving.

These are TF Serving's own rules (tensorflow_serving/servables/tensorflow/
classifier.cc, regressor.cc, predict_util.cc), applied to the SignatureDefs in
`saved_model.pb` the way `saved_model_cli show` reads them, so a model that
would fail in TF Serving fails here first, on a machine without the binary.
"""

from __future__ import annotations

from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from data import storage
from data.storage import Location
from models import features, signature_names

SERVE_TAG = "serve"


class ContractError(ValueError):
    """A SavedModel TF Serving could not load or could not answer for this project."""


def read_signature_defs(model_dir: str | Location) -> dict[str, meta_graph_pb2.SignatureDef]:
    """SignatureDefs of the `serve` MetaGraph, as TF Serving's loader sees them
    (a local folder or one in the object store)."""
    path = storage.location(str(model_dir)) / "saved_model.pb"
    if not path.is_file():
        raise ContractError(f"{model_dir}: no saved_model.pb (not a SavedModel version folder)")
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ContractError(f"{model_dir}: no MetaGraph tagged {SERVE_TAG!r}")


def classify_problems(signature: meta_graph_pb2.SignatureDef) -> list[str]:
    """Why TF Serving's Classify would reject this signature (empty: it would not)."""
    problems = _one_string_input(signature)
    outputs = signature.outputs
    known = {
        signature_names.CLASSIFY_CLASSES: types_pb2.DT_STRING,
        signature_names.CLASSIFY_SCORES: types_pb2.DT_FLOAT,
    }
    if not 1 <= len(outputs) <= 2:
        problems.append(f"expected one or two outputs, found {len(outputs)}")
    if not set(outputs) & set(known):
        problems.append(
            f"outputs must include {signature_names.CLASSIFY_CLASSES!r} or "
            f"{signature_names.CLASSIFY_SCORES!r}, found {sorted(outputs)}"
        )
    for key, info in outputs.items():
        if key not in known:
            problems.append(f"unexpected output {key!r}")
        elif info.dtype != known[key]:
            problems.append(
                f"output {key!r} is {types_pb2.DataType.Name(info.dtype)}, "
                f"expected {types_pb2.DataType.Name(known[key])}"
            )
    return problems


def regress_problems(signature: meta_graph_pb2.SignatureDef) -> list[str]:
    """Why TF Serving's Regress would reject this signature (empty: it would not)."""
    problems = _one_string_input(signature)
    outputs = signature.outputs
    if set(outputs) != {signature_names.REGRESS_OUTPUTS}:
        problems.append(
            f"expected exactly one output {signature_names.REGRESS_OUTPUTS!r}, "
            f"found {sorted(outputs)}"
        )
    elif outputs[signature_names.REGRESS_OUTPUTS].dtype != types_pb2.DT_FLOAT:
        problems.append(f"output {signature_names.REGRESS_OUTPUTS!r} must be DT_FLOAT")
    return problems


def _one_string_input(signature: meta_graph_pb2.SignatureDef) -> list[str]:
    # Classify and Regress feed serialized tf.Examples into the single input.
    if len(signature.inputs) != 1:
        return [f"expected one input, found {len(signature.inputs)}"]
    ((key, info),) = signature.inputs.items()
    if info.dtype != types_pb2.DT_STRING:
        return [
            f"input {key!r} is {types_pb2.DataType.Name(info.dtype)}, expected DT_STRING "
            "(serialized tf.Example)"
        ]
    return []


def model_problems(model_dir: str | Location) -> list[str]:
    """Every way this project's pushed model misses what the client and TF Serving need."""
    try:
        defs = read_signature_defs(model_dir)
    except ContractError as error:
        return [str(error)]
    problems = []
    expected_inputs = {
        signature_names.DEFAULT_SIGNATURE: {signature_names.EXAMPLES_INPUT},
        signature_names.RAW_SIGNATURE: set(features.RAW_INPUT_NAMES),
    }
    for name, inputs in expected_inputs.items():
        if name not in defs:
            problems.append(f"signature {name!r} missing")
            continue
        if set(defs[name].inputs) != inputs:
            problems.append(
                f"signature {name!r} inputs {sorted(defs[name].inputs)}, expected {sorted(inputs)}"
            )
        if set(defs[name].outputs) != {signature_names.PREDICTION_KEY}:
            problems.append(
                f"signature {name!r} outputs {sorted(defs[name].outputs)}, "
                f"expected [{signature_names.PREDICTION_KEY!r}]"
            )
    for name, check in (
        (signature_names.CLASSIFICATION_SIGNATURE, classify_problems),
        (signature_names.REGRESSION_SIGNATURE, regress_problems),
    ):
        if name not in defs:
            problems.append(f"signature {name!r} missing")
        else:
            problems.extend(f"signature {name!r}: {p}" for p in check(defs[name]))
    return problems
