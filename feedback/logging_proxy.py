"""Logs a sample of the requests TF Serving answers, in TF Serving's format.

    python -m feedback.logging_proxy --upstream localhost:8500 --port 8510

A gRPC sidecar in front of TF Serving: clients talk to it as to TF Serving
(PredictionService and ModelService, same messages), it forwards every call
unchanged and answers with TF Serving's own reply or status, and for every
answered Classify, Regress and Predict call it hands request and response to
the request logger (feedback/prediction_log.py), which writes a sample of them
as `PredictionLog` records.

Why a sidecar: the stock `tensorflow_model_server` cannot log requests (it
refuses a models.config with `logging_config`: "No request-logger-creator
provided."; feedback/prediction_log.py says where in its source). The settings
are TF Serving's `LoggingConfig` (serving/logging.config), so a TF Serving
build with a request logger could take them over unchanged.

Only gRPC is logged; REST calls go to TF Serving's REST port directly and are
not logged. Send the traffic you want to learn from over gRPC to this port,
with each complaint's `complaint_id` in its tf.Example (the client's
`--protocol grpc --api classify` does), so outcomes can be joined later
(`python -m feedback.join`). A record that cannot be written is reported on
stderr and counted; the caller still gets its answer.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent import futures
from pathlib import Path

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from feedback import prediction_log
from settings import configs
from settings.configs import REPO_ROOT

# TF Serving's LoggingConfig next to the Compose file that mounts it.
DEFAULT_LOGGING_CONFIG = REPO_ROOT / "serving" / "logging.config"


def _forward(method, request, context):
    """Calls TF Serving; its error status goes back to the caller unchanged."""
    try:
        return method(request, timeout=context.time_remaining())
    except grpc.RpcError as error:
        context.abort(error.code(), error.details())


class _LoggingPredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, channel: grpc.Channel, logger: prediction_log.RequestLogger):
        self._upstream = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        self._logger = logger
        self.failed_logs = 0

    def _answer_and_log(self, kind: str, method, request, context):
        response = _forward(method, request, context)
        try:
            self._logger.log(kind, request, response)
        except Exception as error:  # the answer matters more than its log record
            self.failed_logs += 1
            print(f"request log: record not written ({error})", file=sys.stderr, flush=True)
        return response

    def Classify(self, request, context):
        return self._answer_and_log("classify", self._upstream.Classify, request, context)

    def Regress(self, request, context):
        return self._answer_and_log("regress", self._upstream.Regress, request, context)

    def Predict(self, request, context):
        return self._answer_and_log("predict", self._upstream.Predict, request, context)

    def GetModelMetadata(self, request, context):
        return _forward(self._upstream.GetModelMetadata, request, context)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, channel: grpc.Channel):
        self._upstream = model_service_pb2_grpc.ModelServiceStub(channel)

    def GetModelStatus(self, request, context):
        return _forward(self._upstream.GetModelStatus, request, context)


class LoggingProxy:
    """The proxy, started; port 0 picks a free port."""

    def __init__(
        self,
        upstream: str,
        logger: prediction_log.RequestLogger,
        host: str = "127.0.0.1",
        port: int = 8510,
    ):
        self.logger = logger
        self._channel = grpc.insecure_channel(upstream)
        self.service = _LoggingPredictionService(self._channel, logger)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            self.service, self._server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            _ModelService(self._channel), self._server
        )
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None)
        self._channel.close()
        self.logger.close()


def parse_args(
    argv: Sequence[str] | None, environ: Mapping[str, str] = os.environ
) -> tuple[configs.PipelineConfig, argparse.Namespace]:
    """The proxy's own flags, and the settings it reads (the log prefix)."""
    parser = argparse.ArgumentParser(
        prog="python -m feedback.logging_proxy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--upstream", default="localhost:8500", help="TF Serving's gRPC HOST:PORT (%(default)s)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (%(default)s)")
    parser.add_argument("--port", type=int, default=8510, help="listen port (%(default)s)")
    parser.add_argument(
        "--logging-config",
        type=Path,
        default=DEFAULT_LOGGING_CONFIG,
        help="TF Serving LoggingConfig text proto (default: %(default)s)",
    )
    parser.add_argument(
        "--sampling-rate", type=float, help="share of requests logged, overriding the config's"
    )
    # Log files are <prefix>-<start>-<host>-<pid>.tfrecord: the prefix is the
    # LoggingConfig's filename_prefix, the same setting the skew and join read.
    return configs.parse_args(parser, argv, names=("prediction_log_prefix",), environ=environ)


def main(argv: Sequence[str] | None = None) -> int:
    config, args = parse_args(argv)
    try:
        logging_config = prediction_log.read_logging_config(
            args.logging_config, config.prediction_log_prefix
        )
        if args.sampling_rate is not None:
            logging_config.sampling_config.sampling_rate = args.sampling_rate
            prediction_log.check_logging_config(logging_config)
        logger = prediction_log.RequestLogger(logging_config)
    except (prediction_log.LoggingConfigError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    proxy = LoggingProxy(args.upstream, logger, args.host, args.port)
    print(
        f"logging {logging_config.sampling_config.sampling_rate:.0%} of the gRPC requests to "
        f"{args.upstream} on {args.host}:{proxy.port} into {logger.path}; Ctrl-C stops",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        proxy.stop()
        print(f"logged {logger.logged} request(s) into {logger.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
