"""Request logs in TF Serving's format: one `PredictionLog` per logged request.

What TF Serving defines (read in tensorflow/serving at 2.16.1, the image the
deploy files run):
- A model's `logging_config` (config/logging_config.proto) holds a
  `log_collector_config` {type, filename_prefix} and a `sampling_config`
  {sampling_rate}.
- core/request_logger.cc logs a request with probability `sampling_rate`
  (a uniform draw below the rate), as a `PredictionLog`
  (apis/prediction_log.proto): `log_metadata` (apis/logging.proto: the model
  spec, the sampling config, the SavedModel tags) plus `classify_log`,
  `regress_log` or `predict_log` holding the request and the response. The
  record goes to a `LogCollector` of the configured type (core/log_collector.h).

What the stock server does not do: open-source `tensorflow_model_server`
creates its request logger without a logger creator
(model_servers/server_core.cc), so a models.config carrying any
`logging_config` is refused at load with "Invalid argument: No
request-logger-creator provided." (core/server_request_logger.cc); no
LogCollector type is registered and no RequestLogger implements
`CreateLogMessage` (tensorflow/serving#408, #1846). Logging inside TF Serving
needs a custom build.

So this project logs next to the server (feedback/logging_proxy.py) and reads
its settings from the same `LoggingConfig` message (serving/logging.config),
writing what RequestLogger would hand its collector. The collector here is
type "tfrecord": files `<filename_prefix>-<UTC start>-<host>-<pid>.tfrecord`,
one serialized `PredictionLog` per record, flushed after each one (what
`LogCollector::Flush` promises: the records survive a crash of the process).
`timestamp_secs` is set, which TF Serving's LogMetadata defines and the
skew window and the outcome join read.
"""

from __future__ import annotations

import datetime
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf import text_format
from tensorflow_serving.config import logging_config_pb2

if TYPE_CHECKING:  # the message module imports TensorFlow: only where it is used
    from tensorflow_serving.apis import prediction_log_pb2

from models import features

COLLECTOR_TYPE = "tfrecord"
SAVED_MODEL_TAGS = ("serve",)
LOG_KINDS = ("classify", "regress", "predict")


class LoggingConfigError(ValueError):
    """A logging config this logger cannot honour."""


class CorruptLog(ValueError):
    """A request log with a damaged record (not merely one being written)."""


def read_logging_config(
    path: str | os.PathLike, filename_prefix: str
) -> logging_config_pb2.LoggingConfig:
    """TF Serving's LoggingConfig from a text proto file, checked. The file
    holds the sampling and the collector type; where the files go is the
    `prediction_log_prefix` setting, which the readers of the logs share."""
    try:
        config = text_format.Parse(Path(path).read_text(), logging_config_pb2.LoggingConfig())
    except (OSError, text_format.ParseError) as error:
        raise LoggingConfigError(f"{path}: {error}") from error
    config.log_collector_config.filename_prefix = filename_prefix
    check_logging_config(config, str(path))
    return config


def check_logging_config(config: logging_config_pb2.LoggingConfig, where: str = "") -> None:
    where = f"{where}: " if where else ""
    rate = config.sampling_config.sampling_rate
    if not 0.0 <= rate <= 1.0:
        raise LoggingConfigError(f"{where}sampling_rate must be in [0, 1], got {rate}")
    collector = config.log_collector_config
    if collector.type != COLLECTOR_TYPE:
        raise LoggingConfigError(
            f"{where}log_collector_config.type {collector.type!r}: the collector here "
            f"is {COLLECTOR_TYPE!r} (TFRecord files of PredictionLog)"
        )
    if not collector.filename_prefix:
        raise LoggingConfigError(f"{where}log_collector_config.filename_prefix is empty")


def logging_config(filename_prefix: str, sampling_rate: float) -> logging_config_pb2.LoggingConfig:
    config = logging_config_pb2.LoggingConfig()
    config.log_collector_config.type = COLLECTOR_TYPE
    config.log_collector_config.filename_prefix = filename_prefix
    config.sampling_config.sampling_rate = sampling_rate
    check_logging_config(config)
    return config


class RequestLogger:
    """Samples requests and writes their PredictionLog records, as TF Serving's
    RequestLogger does with a TFRecord collector. Thread-safe."""

    def __init__(
        self,
        config: logging_config_pb2.LoggingConfig,
        draw: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ):
        check_logging_config(config)
        import tensorflow as tf

        self.config = config
        self._draw, self._clock = draw, clock
        started = datetime.datetime.fromtimestamp(clock(), datetime.timezone.utc)
        prefix = config.log_collector_config.filename_prefix
        self.path = (
            f"{prefix}-{started:%Y%m%dT%H%M%SZ}-{socket.gethostname()}-{os.getpid()}.tfrecord"
        )
        parent = os.path.dirname(self.path)
        if parent:
            tf.io.gfile.makedirs(parent)
        self._writer = tf.io.TFRecordWriter(self.path)
        self._lock = threading.Lock()
        self.logged = 0

    def log(self, kind: str, request, response) -> bool:
        """Logs one answered request with probability sampling_rate; True if logged."""
        if kind not in LOG_KINDS:
            raise ValueError(f"kind must be one of {LOG_KINDS}, got {kind!r}")
        if not self._draw() < self.config.sampling_config.sampling_rate:
            return False
        from tensorflow_serving.apis import prediction_log_pb2

        record = prediction_log_pb2.PredictionLog()
        metadata = record.log_metadata
        metadata.model_spec.CopyFrom(response.model_spec)  # the version that answered
        metadata.sampling_config.CopyFrom(self.config.sampling_config)
        metadata.saved_model_tags.extend(SAVED_MODEL_TAGS)
        metadata.timestamp_secs = int(self._clock())
        log = getattr(record, f"{kind}_log")
        log.request.CopyFrom(request)
        log.response.CopyFrom(response)
        with self._lock:
            self._writer.write(record.SerializeToString())
            self._writer.flush()
            self.logged += 1
        return True

    def close(self) -> None:
        with self._lock:
            self._writer.close()


def log_files(filename_prefix: str) -> list[str]:
    import tensorflow as tf

    return sorted(tf.io.gfile.glob(f"{filename_prefix}-*.tfrecord"))


def read_logs(
    filename_prefix: str,
    since: datetime.date | None = None,
    until: datetime.date | None = None,
) -> Iterator[prediction_log_pb2.PredictionLog]:
    """Every record under the prefix logged on a UTC day in [since, until]."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    for path in log_files(filename_prefix):
        records = tf.data.TFRecordDataset(path).as_numpy_iterator()
        count = 0
        while True:
            try:
                serialized = next(records)
            except StopIteration:
                break
            except tf.errors.DataLossError as error:
                # TF's record reader says "truncated record at N" when the
                # file ends inside a record: one the logger is writing right
                # now (the files are read while the proxy runs), or the last
                # one of a logger that was killed; the next read gets it whole
                # or never. Anything else ("corrupted record at N": a checksum
                # that does not match) is damage, and what follows it would be
                # silently dropped: refuse instead.
                if "truncated record" in error.message:
                    break
                where = re.search(r"corrupted record at \d+", error.message)
                raise CorruptLog(
                    f"{path}: record {count + 1} is damaged "
                    f"({where.group(0) if where else error.message}); the "
                    f"{count} records before it are readable. Move the file out of "
                    f"{os.path.dirname(path) or '.'} to read the other logs without it"
                ) from None
            count += 1
            record = prediction_log_pb2.PredictionLog.FromString(serialized)
            day = logged_day(record)
            if (since and day < since) or (until and day > until):
                continue
            yield record


def parse_day(text: str) -> datetime.date:
    """A log window's day on the command line (YYYY-MM-DD, UTC)."""
    import argparse

    try:
        return datetime.date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from error


def logged_day(record: prediction_log_pb2.PredictionLog) -> datetime.date:
    return datetime.datetime.fromtimestamp(
        record.log_metadata.timestamp_secs, datetime.timezone.utc
    ).date()


LoggedComplaint = dict[str, str | int]


def _example_values(example) -> LoggedComplaint:
    values: LoggedComplaint = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        listed = list(getattr(feature, kind).value) if kind else []
        if len(listed) != 1:
            continue  # absent or empty: missing, as the model reads it
        (value,) = listed
        values[name] = value.decode() if isinstance(value, bytes) else int(value)
    return values


def logged_complaints(record: prediction_log_pb2.PredictionLog) -> list[LoggedComplaint]:
    """The complaints one logged request asked about, as the model saw them:
    the model's features that were given (missing ones left out) and the
    complaint id when the request carried one."""
    import tensorflow as tf

    kind = record.WhichOneof("log_type")
    if kind in ("classify_log", "regress_log"):
        request_input = getattr(record, kind).request.input
        if request_input.HasField("example_list_with_context"):
            listed = request_input.example_list_with_context
            context = _example_values(listed.context)
            return [{**context, **_example_values(e)} for e in listed.examples]
        return [_example_values(e) for e in request_input.example_list.examples]
    if kind != "predict_log":
        return []
    inputs = record.predict_log.request.inputs
    if "examples" in inputs:  # serving_default: serialized tf.Examples
        return [
            _example_values(tf.train.Example.FromString(s))
            for s in tf.make_ndarray(inputs["examples"]).ravel()
        ]
    columns = {name: tf.make_ndarray(tensor).ravel() for name, tensor in inputs.items()}
    rows = len(next(iter(columns.values()))) if columns else 0
    complaints = []
    for i in range(rows):
        complaint: LoggedComplaint = {}
        for name, column in columns.items():
            value = column[i]
            value = value.decode() if isinstance(value, bytes) else int(value)
            if name in features.RAW_INPUT_NAMES and value == features.raw_missing_value(name):
                continue
            complaint[name] = value
        complaints.append(complaint)
    return complaints
