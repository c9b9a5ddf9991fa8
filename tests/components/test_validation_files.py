"""The shared readers of StatisticsGen's and ExampleValidator's split files."""

import os

import pandas as pd
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from components import validation_files
from reporting import summary


def _write(uri, split, name, proto):
    os.makedirs(os.path.join(uri, f"Split-{split}"), exist_ok=True)
    with open(os.path.join(uri, f"Split-{split}", name), "wb") as f:
        f.write(proto.SerializeToString())


def test_dataset_level_anomalies_are_read_with_feature_ones(tmp_path):
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["zip_code"].short_description = "Unexpected data type"
    anomalies.anomaly_info["zip_code"].description = "Expected INT, got BYTES"
    anomalies.dataset_anomaly_info.short_description = "Low num examples in dataset."
    anomalies.dataset_anomaly_info.description = "The dataset has 3 examples."
    _write(str(tmp_path), "eval", "SchemaDiff.pb", anomalies)

    found = validation_files.read_anomalies(str(tmp_path), "eval")

    assert [a["feature"] for a in found] == ["zip_code", validation_files.DATASET]
    assert found[1]["detail"] == "The dataset has 3 examples."


def test_the_summary_reports_dataset_level_anomalies(tmp_path):
    # Before the shared reader, the summary said "anomalies none" for this
    # split while the gate stopped the run on it.
    anomalies = anomalies_pb2.Anomalies()
    anomalies.dataset_anomaly_info.short_description = "Low num examples in dataset."
    _write(str(tmp_path), "train", "SchemaDiff.pb", anomalies)
    artifact = _mlmd_artifact(str(tmp_path), ["train"])

    assert summary._anomalies(artifact) == {
        "train": [f"{validation_files.DATASET} (Low num examples in dataset.)"]
    }


def test_examples_are_counted_and_an_empty_split_counts_zero(tmp_path):
    stats = tfdv.generate_statistics_from_dataframe(pd.DataFrame({"label": [0, 1, 1]}))
    _write(str(tmp_path), "train", "FeatureStats.pb", stats)
    _write(str(tmp_path), "eval", "FeatureStats.pb", statistics_pb2.DatasetFeatureStatisticsList())

    assert validation_files.num_examples(str(tmp_path), "train") == 3
    assert validation_files.num_examples(str(tmp_path), "eval") == 0
    assert summary._split_rows(_mlmd_artifact(str(tmp_path), ["train", "eval"])) == {
        "train": 3,
        "eval": 0,
    }


def _mlmd_artifact(uri, splits):
    from ml_metadata.proto import metadata_store_pb2

    artifact = metadata_store_pb2.Artifact(uri=uri)
    artifact.properties["split_names"].string_value = str(splits).replace("'", '"')
    return artifact
