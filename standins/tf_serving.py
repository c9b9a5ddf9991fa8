"""DEVELOPMENT STAND-IN for TensorFlow Serving. It is not TF Serving.

Serves the pushed SavedModels over the slice of TF Serving's REST and gRPC
surface this project's client uses (predict, classify, regress, metadata,
model status; versions and labels from `models.config`), with TF Serving's
request formats and status codes, so the client and the serving contract can
be exercised on machines without the `tensorflow_model_server` binary or
Docker. It runs the model with TensorFlow's Python runtime, one request at a
time per model, with no batching, no version polling and no performance
claims: run the real server (serving/README.md) for anything else.

    python -m standins.tf_serving --model-config serving/models.config \
        --model-base-path serving_model/cfpb_disputes
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from collections.abc import Sequence
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format, text_format
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from models import signature_names
from serving import contract, model_config
from standins import tf_serving_rest

BANNER = "DEVELOPMENT STAND-IN for TensorFlow Serving (not TF Serving; see serving/README.md)"
_GRPC_CODES = {
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
}
_HTTP_CODES = {"NOT_FOUND": 404, "INVALID_ARGUMENT": 400}


def runtime_status_message(error) -> str:
    """The error text TF Serving sends for a failed model call: the TF runtime's
    status message (e.g. "assertion failed: [...]\n\t [[{{node ...}}]]", or
    parse_example's "Feature: product ... is required but could not be found"),
    without what TF's Python layer adds around it: the "Graph execution error:"
    header with the op's Python stack, and the trailing " [Op:...]". (TF Serving's
    REST reply quoted in tensorflow/tfx#2245: {"error": "Name: <unknown>, Feature:
    AA (data type: string) is required but could not be found.\n\t [[{{node
    ParseExample/ParseExampleV2}}]]"}.)"""
    lines = error.message.splitlines()
    if lines and lines[0] == "Graph execution error:":
        start = (
            next(
                (i for i, line in enumerate(lines) if line.endswith("(most recent call last):")), 0
            )
            + 1
        )
        while start < len(lines) and (
            lines[start].startswith(" ") or lines[start] == "<stack traces unavailable>"
        ):
            start += 1
        lines = lines[start:]
    return re.sub(r" \[Op:[^\]]*\]$", "", "\n".join(lines))


class ServingStatus(Exception):
    """An error with the status TF Serving would return."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class ServedModel:
    """The versions and labels of one model, loaded."""

    def __init__(self, name: str, base_path: str, versions: Sequence[int], labels: dict[str, int]):
        """`base_path` is a local folder or an object-store URI: TF Serving, and
        this stand-in, load versions through TensorFlow's filesystems."""
        self.name = name
        self.labels = dict(labels)
        base = str(base_path).rstrip("/")
        self._loaded = {v: tf.saved_model.load(f"{base}/{v}") for v in versions}
        self._signature_defs = {v: contract.read_signature_defs(f"{base}/{v}") for v in versions}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config_path: Path, base_path: str | None = None) -> ServedModel:
        """The first model of a `models.config`, its base path optionally remapped."""
        server_config = text_format.Parse(
            Path(config_path).read_text(), model_server_config_pb2.ModelServerConfig()
        )
        models = server_config.model_config_list.config
        if not models:
            raise ValueError(f"{config_path}: no model in model_config_list")
        model = models[0]
        if model.HasField("logging_config"):
            # What the stock tensorflow_model_server answers (it has no request
            # logger; feedback/prediction_log.py cites the source).
            raise ValueError(
                f"{config_path}: Invalid argument: No request-logger-creator provided. "
                "(TF Serving cannot log requests without a custom build: log with "
                "`python -m feedback.logging_proxy` in front of it)"
            )
        if not model.model_version_policy.specific.versions:
            raise ValueError(
                f"{config_path}: the stand-in serves a 'specific' version policy "
                "(what serving.model_config writes)"
            )
        return cls(
            model.name,
            str(base_path or model.base_path),
            list(model.model_version_policy.specific.versions),
            dict(model.version_labels),
        )

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> int:
        if name != self.name:
            raise ServingStatus("NOT_FOUND", f"Servable not found for request: Latest({name})")
        if label:
            if label not in self.labels:
                raise ServingStatus(
                    "INVALID_ARGUMENT", f"Unrecognized servable version label: {label}"
                )
            return self.labels[label]
        if version is None:
            return max(self._loaded)
        if version not in self._loaded:
            raise ServingStatus(
                "NOT_FOUND", f"Servable not found for request: Specific({name}, {version})"
            )
        return version

    def signature_defs(self, version: int) -> dict[str, meta_graph_pb2.SignatureDef]:
        return self._signature_defs[version]

    def signature(self, version: int, name: str) -> meta_graph_pb2.SignatureDef:
        name = name or signature_names.DEFAULT_SIGNATURE
        if name not in self._signature_defs[version]:
            raise ServingStatus(
                "INVALID_ARGUMENT", f'Serving signature name: "{name}" not found in signature def'
            )
        return self._signature_defs[version][name]

    def run(
        self, version: int, signature_name: str, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        signature_name = signature_name or signature_names.DEFAULT_SIGNATURE
        expected = set(self.signature(version, signature_name).inputs)
        if set(inputs) != expected:
            raise ServingStatus(
                "INVALID_ARGUMENT",
                f"inputs {sorted(inputs)} do not match the signature's {sorted(expected)}",
            )
        function = self._loaded[version].signatures[signature_name]
        try:
            with self._lock:
                outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as error:
            raise ServingStatus("INVALID_ARGUMENT", runtime_status_message(error)) from error
        except (TypeError, ValueError) as error:
            raise ServingStatus("INVALID_ARGUMENT", str(error).splitlines()[0]) from error
        return {k: v.numpy() for k, v in outputs.items()}

    def run_on_examples(
        self, version: int, signature_name: str, api: str, serialized: list[bytes]
    ) -> dict[str, np.ndarray]:
        """Classify/Regress: checks the signature by TF Serving's rules, feeds the examples."""
        signature = self.signature(version, signature_name)
        check = contract.classify_problems if api == "classify" else contract.regress_problems
        problems = check(signature)
        if problems:
            raise ServingStatus(
                "INVALID_ARGUMENT",
                f"signature {signature_name!r} cannot {api}: " + "; ".join(problems),
            )
        (input_name,) = signature.inputs
        return self.run(version, signature_name, {input_name: np.array(serialized, dtype=object)})


_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?::(?P<verb>predict|classify|regress)|/(?P<metadata>metadata))?$"
)


def _rest_handler(model: ServedModel):

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            match = _PATH.match(self.path)
            wants_verb = method == "POST"
            if not match or bool(match["verb"]) != wants_verb:
                self._reply(404, {"error": f"Malformed request: {method} {self.path}"})
                return
            try:
                version = model.resolve(
                    match["name"],
                    int(match["version"]) if match["version"] else None,
                    match["label"],
                )
                if match["verb"]:
                    self._reply(200, self._post(match["verb"], version))
                elif match["metadata"]:
                    self._reply(200, _metadata_json(model, version))
                else:
                    self._reply(
                        200,
                        {
                            "model_version_status": [
                                {
                                    "version": str(version),
                                    "state": "AVAILABLE",
                                    "status": {"error_code": "OK", "error_message": ""},
                                }
                            ]
                        },
                    )
            except ServingStatus as status:
                self._reply(_HTTP_CODES[status.code], {"error": str(status)})
            except tf_serving_rest.RequestError as error:
                self._reply(400, {"error": str(error)})

        def _post(self, verb: str, version: int) -> dict:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                body = json.loads(raw)
            except ValueError as error:
                raise tf_serving_rest.RequestError(f"JSON Parse error: {error}") from error
            if not isinstance(body, dict):
                raise tf_serving_rest.RequestError("the request body must be a JSON object")
            signature_name = body.get("signature_name", signature_names.DEFAULT_SIGNATURE)
            if verb == "predict":
                signature = model.signature(version, signature_name)
                outputs = model.run(
                    version, signature_name, tf_serving_rest.predict_inputs(body, signature)
                )
                return tf_serving_rest.predict_reply(outputs, row_format="instances" in body)
            outputs = model.run_on_examples(
                version, signature_name, verb, tf_serving_rest.examples(body)
            )
            if verb == "classify":
                return tf_serving_rest.classify_reply(outputs["classes"], outputs["scores"])
            return tf_serving_rest.regress_reply(outputs["outputs"])

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

    return Handler


def _metadata_json(model: ServedModel, version: int) -> dict:
    signature_map = get_model_metadata_pb2.SignatureDefMap(
        signature_def=model.signature_defs(version)
    )
    return {
        "model_spec": {"name": model.name, "signature_name": "", "version": str(version)},
        "metadata": {
            "signature_def": json_format.MessageToDict(
                signature_map, preserving_proto_field_name=True
            )
        },
    }


def _spec_version(model: ServedModel, spec) -> int:
    version = spec.version.value if spec.HasField("version") else None
    return model.resolve(spec.name, version, spec.version_label or None)


def _fill_spec(response_spec, model: ServedModel, version: int, signature_name: str) -> None:
    response_spec.name = model.name
    response_spec.version.value = version
    response_spec.signature_name = signature_name or signature_names.DEFAULT_SIGNATURE


def _grpc_guard(method):
    def wrapped(self, request, context):
        try:
            return method(self, request, context)
        except ServingStatus as status:
            context.abort(_GRPC_CODES[status.code], str(status))

    return wrapped


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, model: ServedModel):
        self.model = model

    @_grpc_guard
    def Predict(self, request, context):
        version = _spec_version(self.model, request.model_spec)
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = self.model.run(version, request.model_spec.signature_name, inputs)
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, self.model, version, request.model_spec.signature_name)
        for key, value in outputs.items():
            if not request.output_filter or key in request.output_filter:
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def _examples(self, request) -> list[bytes]:
        if not request.input.example_list.examples:
            raise ServingStatus("INVALID_ARGUMENT", "Input is empty: use example_list")
        return [e.SerializeToString() for e in request.input.example_list.examples]

    @_grpc_guard
    def Classify(self, request, context):
        version = _spec_version(self.model, request.model_spec)
        outputs = self.model.run_on_examples(
            version, request.model_spec.signature_name, "classify", self._examples(request)
        )
        response = classification_pb2.ClassificationResponse()
        _fill_spec(response.model_spec, self.model, version, request.model_spec.signature_name)
        for classes, scores in zip(outputs["classes"], outputs["scores"], strict=True):
            row = response.result.classifications.add()
            for label, score in zip(classes, scores, strict=True):
                row.classes.add(label=label.decode(), score=float(score))
        return response

    @_grpc_guard
    def Regress(self, request, context):
        version = _spec_version(self.model, request.model_spec)
        outputs = self.model.run_on_examples(
            version, request.model_spec.signature_name, "regress", self._examples(request)
        )
        response = regression_pb2.RegressionResponse()
        _fill_spec(response.model_spec, self.model, version, request.model_spec.signature_name)
        for value in tf_serving_rest.regress_reply(outputs["outputs"])["result"]:
            response.result.regressions.add(value=value)
        return response

    @_grpc_guard
    def GetModelMetadata(self, request, context):
        if list(request.metadata_field) != ["signature_def"]:
            raise ServingStatus("INVALID_ARGUMENT", "metadata_field must be ['signature_def']")
        version = _spec_version(self.model, request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, self.model, version, "")
        response.model_spec.signature_name = ""
        response.metadata["signature_def"].Pack(
            get_model_metadata_pb2.SignatureDefMap(signature_def=self.model.signature_defs(version))
        )
        return response


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, model: ServedModel):
        self.model = model

    @_grpc_guard
    def GetModelStatus(self, request, context):
        version = _spec_version(self.model, request.model_spec)
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add(
            version=version, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE
        )
        status.status.error_message = ""
        return response


class StandIn:
    """Both endpoints, started; port 0 picks a free port."""

    def __init__(
        self,
        model: ServedModel,
        host: str = "127.0.0.1",
        rest_port: int = 8501,
        grpc_port: int = 8500,
    ):
        self.model = model  # its labels may be moved, as a reloaded models.config does
        self._http = ThreadingHTTPServer((host, rest_port), _rest_handler(model))
        self.rest_port = self._http.server_address[1]
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(model), self._grpc
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(model), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"{host}:{grpc_port}")
        self._grpc.start()
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m standins.tf_serving",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model-config",
        type=Path,
        default=model_config.DEFAULT_OUTPUT,
        help="models.config written by `python -m serving.model_config` (default: %(default)s)",
    )
    parser.add_argument(
        "--model-base-path",
        help="where the versions are on this machine, if not the config's "
        "base_path (the config names the container path /models/...)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rest-port", type=int, default=8501)
    parser.add_argument("--grpc-port", type=int, default=8500)
    args = parser.parse_args(argv)
    print(BANNER, flush=True)
    try:
        model = ServedModel.from_config(args.model_config, args.model_base_path)
    except (OSError, ValueError, text_format.ParseError, contract.ContractError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    server = StandIn(model, args.host, args.rest_port, args.grpc_port)
    print(
        f"model {model.name!r} versions {sorted(set(model.labels.values()))} labels {model.labels}; "
        f"REST http://{args.host}:{server.rest_port}, gRPC {args.host}:{server.grpc_port}; "
        "Ctrl-C stops",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
