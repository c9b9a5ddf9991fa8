"""The files StatisticsGen and ExampleValidator write, read one split at a time.

The validation gate and the run summary both read them, so both see the
same anomalies, dataset-level ones (e.g. too few examples) included.
"""

import json
import os

# The "feature" name of an anomaly of the whole split (e.g. too few examples).
DATASET = "(dataset)"


def split_names(split_names_json: str) -> list[str]:
    """Split names from an artifact's `split_names` property (a JSON list)."""
    return json.loads(split_names_json) if split_names_json else []


def read_statistics(statistics_uri: str, split: str):
    """The DatasetFeatureStatisticsList of one split."""
    import tensorflow_data_validation as tfdv

    return tfdv.load_stats_binary(os.path.join(statistics_uri, f"Split-{split}", "FeatureStats.pb"))


def num_examples(statistics_uri: str, split: str) -> int:
    """Examples in one split; 0 for a split TFDV saw no rows of (no dataset at all)."""
    datasets = read_statistics(statistics_uri, split).datasets
    return datasets[0].num_examples if datasets else 0


def read_anomalies(anomalies_uri: str, split: str) -> list[dict]:
    """[{feature, anomaly, detail}] of one split; dataset-level ones as feature "(dataset)"."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.utils import io_utils

    proto = anomalies_pb2.Anomalies()
    proto.ParseFromString(
        io_utils.read_bytes_file(os.path.join(anomalies_uri, f"Split-{split}", "SchemaDiff.pb"))
    )
    found = [
        {"feature": name, "anomaly": info.short_description, "detail": info.description}
        for name, info in sorted(proto.anomaly_info.items())
    ]
    if proto.HasField("dataset_anomaly_info"):
        info = proto.dataset_anomaly_info
        found.append(
            {"feature": DATASET, "anomaly": info.short_description, "detail": info.description}
        )
    return found
