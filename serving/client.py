"""Asks TF Serving whether consumers will dispute complaints.

    python -m serving.client --input complaint.json                 # REST predict
    python -m serving.client --product Mortgage --company-response "Closed with explanation" \
        --timely-response Yes --date-received 2015-03-02 --date-sent-to-company 2015-03-04
    python -m serving.client --input c.json --protocol grpc --label stable
    python -m serving.client --api metadata

A complaint is a JSON object of raw fields (a file may hold one object or a
list). product, company_response, timely_response, date_received and
date_sent_to_company (YYYY-MM-DD) must be given (the schema requires them in
every complaint, and every signature refuses a complaint without them); other
fields left out or empty count as missing, like empty CSV cells. Other
columns of the prepared CSV (the label, company, channel) are ignored; unknown names are an error. A `complaint_id` travels with the
complaint on --api classify (inside its tf.Example), so that a logged request
can be joined with the complaint's outcome (feedback/join.py); predict's
serving_raw signature cannot carry it.
Prints each complaint's dispute probability and the model version that
answered. Exit status: 0 answered, 1 the server failed or refused, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from data import prepare
from models import features
from models.signature_names import CLASSIFICATION_SIGNATURE, PREDICTION_KEY, RAW_SIGNATURE
from serving import urls
from settings import configs

POSITIVE_CLASS = features.LABEL_CLASSES[1]
INTEGER_FEATURES = features.INTEGER_INPUT_NAMES
REQUIRED_FEATURES = features.REQUIRED_INPUT_NAMES
# Sent inside each tf.Example (classify) so that a logged request can be joined
# with the complaint's outcome later (feedback/join.py); the model's parser
# ignores features it does not know. serving_raw (predict) has no place for it.
ID_KEY = prepare.ID_COLUMN

Complaint = dict[str, str | int]


class InputError(ValueError):
    """A complaint the client will not send (unknown field, wrong type)."""


class ServingError(RuntimeError):
    """The server could not be reached, or refused or failed the request."""


@dataclass
class Answer:
    probabilities: list[float]
    version: int


def normalize(raw: dict) -> Complaint:
    """Only the model's features, typed; raises InputError on unknown names or bad values."""
    if not isinstance(raw, dict):
        raise InputError(f"a complaint is a JSON object of fields, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(prepare.CANONICAL_COLUMNS) - {ID_KEY})
    if unknown:
        raise InputError(
            f"unknown field(s) {', '.join(unknown)}; the model reads "
            f"{', '.join(features.RAW_INPUT_NAMES)}"
        )
    complaint: Complaint = {}
    for name in features.RAW_INPUT_NAMES:
        value = raw.get(name)
        if value in (None, ""):
            continue
        if name in INTEGER_FEATURES:
            if isinstance(value, bool) or not (isinstance(value, int) or str(value).isdigit()):
                raise InputError(f"{name} must be a number (a five-digit ZIP), got {value!r}")
            complaint[name] = int(value)
        elif name in features.DATE_INPUT_NAMES and not (
            isinstance(value, str) and re.fullmatch(features.DATE_PATTERN, value)
        ):
            raise InputError(f"{name} must be a date written YYYY-MM-DD, got {value!r}")
        elif isinstance(value, str):
            complaint[name] = value
        else:
            raise InputError(f"{name} must be a string, got {value!r}")
    complaint_id = raw.get(ID_KEY)
    if complaint_id not in (None, ""):
        if isinstance(complaint_id, bool) or not isinstance(complaint_id, str | int):
            raise InputError(f"{ID_KEY} must be a string or a number, got {complaint_id!r}")
        complaint[ID_KEY] = str(complaint_id)
    missing = [name for name in REQUIRED_FEATURES if name not in complaint]
    if missing:
        raise InputError(
            f"{', '.join(missing)} must be given: the schema requires "
            f"{', '.join(REQUIRED_FEATURES)} in every complaint"
        )
    return complaint


def raw_instance(complaint: Complaint) -> Complaint:
    """serving_raw takes every feature: missing ones as '' (or 0 for a ZIP)."""
    return {
        name: complaint.get(name, features.raw_missing_value(name))
        for name in features.RAW_INPUT_NAMES
    }


class _ServerClient:
    """Where the server is and which model, version or label to ask: the same
    for both protocols."""

    def __init__(
        self,
        host: str,
        port: int,
        model_name: str,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 10.0,
    ):
        # Fail early on a name/version/label that cannot be a URL: gRPC takes
        # the same ones, so both protocols accept the same settings.
        urls.model_path(model_name, version, label)
        self.host, self.port = host, port
        self.model = (model_name, version, label)
        self.timeout = timeout


class RestClient(_ServerClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.base = urls.base_url(self.host, self.port)

    def _call(self, path: str, body: dict | None = None) -> dict:
        url = self.base + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except ValueError:
                pass
            hint = " (unknown model, version or label?)" if error.code == 404 else ""
            raise ServingError(
                f"TF Serving answered {error.code} {error.reason} for "
                f"{'POST' if body is not None else 'GET'} {url}{hint}: {detail}"
            ) from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ServingError(
                f"cannot reach TF Serving at {self.base} ({reason}); is it running? "
                "See serving/README.md"
            ) from error

    def metadata(self) -> dict:
        return self._call(urls.metadata_path(*self.model))

    def _ask(self, verb: str, body: dict) -> tuple[dict, int]:
        """(the reply, the version that gave it). REST replies carry no
        version, and asking for it afterwards could name a version loaded in
        between; so the version behind the latest or the label is read first
        and the request goes to that version's own URL. If that version was
        unloaded in between (404), once more with the version serving now."""
        name, version, _ = self.model
        if version is not None:
            return self._call(urls.verb_path(verb, name, version), body), version
        version = self._serving_version()
        try:
            return self._call(urls.verb_path(verb, name, version), body), version
        except ServingError as error:
            cause = error.__cause__
            if not (isinstance(cause, urllib.error.HTTPError) and cause.code == 404):
                raise
        version = self._serving_version()
        return self._call(urls.verb_path(verb, name, version), body), version

    def _serving_version(self) -> int:
        return int(self.metadata()["model_spec"]["version"])

    def predict(self, complaints: Sequence[Complaint]) -> Answer:
        reply, version = self._ask(
            "predict",
            {"signature_name": RAW_SIGNATURE, "instances": [raw_instance(c) for c in complaints]},
        )
        return Answer([_scalar(p) for p in reply["predictions"]], version)

    def classify(self, complaints: Sequence[Complaint]) -> Answer:
        reply, version = self._ask(
            "classify", {"signature_name": CLASSIFICATION_SIGNATURE, "examples": list(complaints)}
        )
        return Answer([dict(map(tuple, r))[POSITIVE_CLASS] for r in reply["result"]], version)


class GrpcClient(_ServerClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.target = f"{self.host}:{self.port}"
        self.channel = grpc.insecure_channel(self.target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def _spec(self, spec, signature_name: str) -> None:
        name, version, label = self.model
        spec.name = name
        spec.signature_name = signature_name
        if version is not None:
            spec.version.value = version
        elif label is not None:
            spec.version_label = label

    def _call(self, method, request):
        import grpc

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            code = error.code()
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ServingError(
                    f"cannot reach TF Serving over gRPC at {self.target} "
                    f"({code.name}: {error.details()}); is it running? "
                    "See serving/README.md"
                ) from error
            hint = (
                " (unknown model, version or label?)" if code == grpc.StatusCode.NOT_FOUND else ""
            )
            raise ServingError(
                f"TF Serving answered {code.name}{hint}: {error.details()}"
            ) from error

    def metadata(self) -> dict:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, "")
        response = self._call(self.stub.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {
            "model_spec": {
                "name": response.model_spec.name,
                "signature_name": "",
                "version": str(response.model_spec.version.value),
            },
            "metadata": {
                "signature_def": json_format.MessageToDict(
                    signature_map, preserving_proto_field_name=True
                )
            },
        }

    def predict(self, complaints: Sequence[Complaint]) -> Answer:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, RAW_SIGNATURE)
        instances = [raw_instance(c) for c in complaints]
        for name in features.RAW_INPUT_NAMES:
            dtype = tf.int64 if name in INTEGER_FEATURES else tf.string
            request.inputs[name].CopyFrom(tf.make_tensor_proto([i[name] for i in instances], dtype))
        response = self._call(self.stub.Predict, request)
        values = tf.make_ndarray(response.outputs[PREDICTION_KEY]).reshape(len(instances))
        return Answer([float(v) for v in values], response.model_spec.version.value)

    def classify(self, complaints: Sequence[Complaint]) -> Answer:
        from tensorflow_serving.apis import classification_pb2

        request = classification_pb2.ClassificationRequest()
        self._spec(request.model_spec, CLASSIFICATION_SIGNATURE)
        for complaint in complaints:
            feature = request.input.example_list.examples.add().features.feature
            for name, value in complaint.items():
                if isinstance(value, int):
                    feature[name].int64_list.value.append(value)
                else:
                    feature[name].bytes_list.value.append(value.encode())
        response = self._call(self.stub.Classify, request)
        return Answer(
            [
                {c.label: c.score for c in row.classes}[POSITIVE_CLASS]
                for row in response.result.classifications
            ],
            response.model_spec.version.value,
        )


def _scalar(value) -> float:
    while isinstance(value, list):  # [batch, 1] outputs arrive as one-element lists
        (value,) = value
    return float(value)


def _numbered(check, number: int, raw, count: int) -> Complaint:
    """Names the complaint in an InputError when a file holds several."""
    try:
        return check(raw)
    except InputError as error:
        raise InputError(f"complaint {number}: {error}" if count > 1 else str(error)) from None


def read_complaints(path: Path) -> list[dict]:
    try:
        loaded = json.loads(Path(path).read_text())
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from error
    except ValueError as error:
        raise InputError(f"{path} is not JSON: {error}") from error
    return loaded if isinstance(loaded, list) else [loaded]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="localhost")
    server.add_argument("--protocol", choices=("rest", "grpc"), default="rest")
    server.add_argument("--rest-port", type=int, default=8501)
    server.add_argument("--grpc-port", type=int, default=8500)
    which = server.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="ask this model version")
    which.add_argument("--label", help="ask the version behind this label (stable, canary)")
    server.add_argument(
        "--api",
        choices=("predict", "classify", "metadata"),
        default="predict",
        help="predict (serving_raw signature), classify (classification "
        "signature, tf.Examples) or metadata (signatures and version)",
    )
    server.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    complaint = parser.add_argument_group("complaint (a JSON file, or one complaint as flags)")
    complaint.add_argument("--input", type=Path, help="JSON object or list of objects")
    for name in features.RAW_INPUT_NAMES:
        complaint.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=int if name in INTEGER_FEATURES else str,
            help="required" if name in REQUIRED_FEATURES else None,
        )
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    config, args = configs.parse_args(_parser(), argv, names=("model_name",))
    try:
        flags = {
            n: getattr(args, n) for n in features.RAW_INPUT_NAMES if getattr(args, n) is not None
        }
        if args.api == "metadata":
            raw: list = []
        elif args.input and flags:
            raise InputError("give complaints either as --input or as field flags, not both")
        else:
            raw = read_complaints(args.input) if args.input else [flags]
            if not raw or raw == [{}]:
                raise InputError("no complaint given: use --input FILE or field flags (see --help)")
        complaints = [_numbered(normalize, i, c, len(raw)) for i, c in enumerate(raw, 1)]
        client_class = RestClient if args.protocol == "rest" else GrpcClient
        port = args.rest_port if args.protocol == "rest" else args.grpc_port
        client = client_class(
            args.host, port, config.model_name, args.version, args.label, args.timeout
        )
    except (InputError, urls.UrlError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if args.api == "metadata":
            metadata = client.metadata()
            print(json.dumps(metadata, indent=2) if args.json else _describe(metadata))
            return 0
        answer = getattr(client, args.api)(complaints)
    except ServingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "model": config.model_name,
                    "version": answer.version,
                    PREDICTION_KEY: answer.probabilities,
                }
            )
        )
    else:
        pinned = f", label {args.label}" if args.label else ""
        print(
            f"model {config.model_name} version {answer.version}{pinned} answered "
            f"({args.protocol} {args.api}):"
        )
        for i, probability in enumerate(answer.probabilities, 1):
            print(f"  complaint {i}: dispute probability {probability:.4f}")
    return 0


def _describe(metadata: dict) -> str:
    spec = metadata["model_spec"]
    lines = [f"model {spec['name']} version {spec['version']}; signatures:"]
    signature_defs = metadata["metadata"]["signature_def"]["signature_def"]
    for name, signature in sorted(signature_defs.items()):
        if name.startswith("__"):
            continue  # TF's internal init op, not callable
        lines.append(
            f"  {name}: inputs {sorted(signature.get('inputs', {}))} -> "
            f"outputs {sorted(signature.get('outputs', {}))}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
