"""Request logs in TF Serving's PredictionLog format, written by the logging
proxy in front of the serving stand-in, from real complaints replayed through
the client (tests/feedback/traffic.py)."""

import csv
import datetime

import grpc
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_serving.apis import (
    classification_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from data import prepare
from feedback import logging_proxy, prediction_log, skew
from models import features, signature_names
from serving import client
from standins import tf_serving
from tests.feedback.traffic import EARLIER_ROWS, REPLAY_BATCH

pytestmark = pytest.mark.e2e


def _records(prefix: str) -> list[prediction_log_pb2.PredictionLog]:
    files = prediction_log.log_files(prefix)
    assert files, f"no log file under {prefix}"
    return [
        prediction_log_pb2.PredictionLog.FromString(raw)
        for path in files
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator()
    ]


def _sent_rows(limit: int) -> list[dict]:
    """The export rows the replay sent: the first `limit` the client accepts."""
    rows = []
    for row in prepare.complaints_as_asked(prepare.RAW_DIR / "complaints_2014-10_2014-11.csv.gz"):
        try:
            client.normalize({k: v for k, v in row.items() if v != ""})
        except client.InputError:
            continue
        rows.append(row)
        if len(rows) == limit:
            return rows
    return rows


def test_logs_are_tf_serving_prediction_logs(feedback_traffic):
    earlier = feedback_traffic.earlier
    records = _records(earlier.prefix)
    assert len(records) == earlier.logged == EARLIER_ROWS // REPLAY_BATCH
    today = datetime.datetime.now(datetime.timezone.utc).date()
    ids = []
    for record in records:
        assert record.WhichOneof("log_type") == "classify_log"
        metadata = record.log_metadata
        assert metadata.model_spec.name == feedback_traffic.config.model_name
        assert metadata.model_spec.version.value == feedback_traffic.version
        assert metadata.model_spec.signature_name == signature_names.CLASSIFICATION_SIGNATURE
        assert metadata.sampling_config.sampling_rate == 1.0
        assert list(metadata.saved_model_tags) == ["serve"]
        assert abs((prediction_log.logged_day(record) - today).days) <= 1
        log = record.classify_log
        examples = log.request.input.example_list.examples
        assert len(examples) == REPLAY_BATCH == len(log.response.result.classifications)
        ids += [e.features.feature["complaint_id"].bytes_list.value[0].decode() for e in examples]
    sent = _sent_rows(EARLIER_ROWS)
    assert ids == [row["complaint_id"] for row in sent]


def test_statistics_from_logs_match_statistics_of_the_same_rows(feedback_traffic, tmp_path):
    complaints = [
        c
        for r in _records(feedback_traffic.earlier.prefix)
        for c in prediction_log.logged_complaints(r)
    ]
    from_logs = skew.serving_statistics(complaints, str(tmp_path))
    direct_csv = tmp_path / "sent.csv"
    with direct_csv.open("w", newline="") as out:
        writer = csv.DictWriter(out, features.RAW_INPUT_NAMES, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(_sent_rows(EARLIER_ROWS))
    direct = tfdv.generate_statistics_from_csv(str(direct_csv))
    (logged_set,) = from_logs.datasets
    (direct_set,) = direct.datasets
    assert logged_set.num_examples == direct_set.num_examples == EARLIER_ROWS
    by_name = {f.path.step[0]: f for f in direct_set.features}
    assert sorted(by_name) == sorted(features.RAW_INPUT_NAMES)
    for logged in logged_set.features:
        expected = by_name[logged.path.step[0]]
        # The same feature statistics: counts, missing values, top values,
        # histograms; only the proto's field order may differ.
        assert logged == expected, logged.path.step[0]


def test_sampling_is_a_uniform_draw_below_the_rate(tmp_path):
    # TF Serving's RequestLogger: `if (uniform_sampler_.Sample(sampling_rate))`,
    # Sample(rate) = dist_(gen_) < rate (core/request_logger.{h,cc}).
    draws = iter([0.2, 0.5, 0.7, 0.0])
    config = prediction_log.logging_config(str(tmp_path / "p"), 0.5)
    logger = prediction_log.RequestLogger(config, draw=lambda: next(draws))
    response = classification_pb2.ClassificationResponse()
    request = classification_pb2.ClassificationRequest()
    assert [logger.log("classify", request, response) for _ in range(4)] == [
        True,
        False,
        False,
        True,
    ]
    logger.close()
    assert len(_records(str(tmp_path / "p"))) == 2
    with pytest.raises(prediction_log.LoggingConfigError, match="sampling_rate"):
        prediction_log.logging_config(str(tmp_path / "q"), 1.5)


def test_a_refused_request_is_answered_with_tf_servings_status_and_not_logged(
    feedback_traffic, tmp_path
):
    logger = prediction_log.RequestLogger(prediction_log.logging_config(str(tmp_path / "p"), 1.0))
    proxy = logging_proxy.LoggingProxy(
        f"127.0.0.1:{feedback_traffic.server.grpc_port}", logger, port=0
    )
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{proxy.port}")
        )
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = feedback_traffic.config.model_name
        request.model_spec.signature_name = signature_names.CLASSIFICATION_SIGNATURE
        example = request.input.example_list.examples.add()
        example.features.feature["state"].bytes_list.value.append(b"CA")  # no product
        with pytest.raises(grpc.RpcError) as refused:
            stub.Classify(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "is required but could not be found" in refused.value.details()
        request.model_spec.name = "no_such_model"
        with pytest.raises(grpc.RpcError) as unknown:
            stub.Classify(request, timeout=30)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        proxy.stop()
    assert logger.logged == 0


def test_the_stand_in_refuses_logging_config_as_the_stock_server_does(tmp_path):
    server_config = model_server_config_pb2.ModelServerConfig()
    model = server_config.model_config_list.config.add(name="m", base_path=str(tmp_path))
    model.model_version_policy.specific.versions.append(1)
    model.logging_config.sampling_config.sampling_rate = 0.1
    path = tmp_path / "models.config"
    path.write_text(str(server_config))
    with pytest.raises(ValueError, match="No request-logger-creator provided"):
        tf_serving.ServedModel.from_config(path)


def test_the_shipped_logging_config(tmp_path):
    config = prediction_log.read_logging_config(
        logging_proxy.DEFAULT_LOGGING_CONFIG, str(tmp_path / "p")
    )
    assert config.log_collector_config.type == prediction_log.COLLECTOR_TYPE
    assert 0 < config.sampling_config.sampling_rate <= 1
    bad = tmp_path / "bad.config"
    bad.write_text('log_collector_config { type: "bigquery" }')
    with pytest.raises(prediction_log.LoggingConfigError, match="tfrecord"):
        prediction_log.read_logging_config(bad, str(tmp_path / "p"))


def test_the_complaint_id_does_not_change_the_answer(feedback_traffic):
    """The id rides in each tf.Example; the model's parser ignores it."""
    asked = client.GrpcClient(
        "127.0.0.1", feedback_traffic.server.grpc_port, feedback_traffic.config.model_name
    )
    with_ids = [client.normalize({k: v for k, v in r.items() if v}) for r in _sent_rows(20)]
    without = [{k: v for k, v in c.items() if k != client.ID_KEY} for c in with_ids]
    assert all(client.ID_KEY in c for c in with_ids)
    assert asked.classify(with_ids).probabilities == asked.classify(without).probabilities


def _three_logged_records(prefix: str) -> tuple[str, bytes]:
    """(the log file of three logged requests, its bytes)."""
    logger = prediction_log.RequestLogger(prediction_log.logging_config(prefix, 1.0))
    response = classification_pb2.ClassificationResponse()
    for _ in range(3):
        logger.log("classify", classification_pb2.ClassificationRequest(), response)
    logger.close()
    (path,) = prediction_log.log_files(prefix)
    return path, open(path, "rb").read()


def test_a_record_being_written_is_left_for_the_next_read(tmp_path):
    path, data = _three_logged_records(str(tmp_path / "p"))
    with open(path, "wb") as cut:  # as a reader finds it mid-write
        cut.write(data[:-5])
    assert len(list(prediction_log.read_logs(str(tmp_path / "p")))) == 2


def test_a_damaged_record_is_refused_not_read_as_the_end_of_the_file(tmp_path):
    path, logged = _three_logged_records(str(tmp_path / "p"))
    data = bytearray(logged)
    data[len(data) // 3 + 14] ^= 0xFF  # a byte inside the second record's payload
    with open(path, "wb") as damaged:
        damaged.write(data)
    with pytest.raises(
        prediction_log.CorruptLog,
        match=r"p-.*\.tfrecord: record 2 is damaged \(corrupted record at \d+\); the 1 "
        r"records before it are readable",
    ):
        list(prediction_log.read_logs(str(tmp_path / "p")))
