"""The pipeline's own splits (CsvExampleGen's output), read without TFX.

Every baseline and the bare script use exactly the rows the pipeline used.
"""
from __future__ import annotations

import glob
import os
from typing import Dict, List, Tuple

import numpy as np

from models import features

CATEGORICAL = [f.name for f in features.CATEGORICAL_FEATURES]
NUMERIC = [f.name for f in features.BUCKETIZED_FEATURES]
# (columns: {feature: values}, labels, serialized tf.Examples) of one split.
Split = Tuple[Dict[str, np.ndarray], np.ndarray, List[bytes]]


def split_files(examples_uri: str, split: str) -> List[str]:
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        raise FileNotFoundError(f"no {split} split under {examples_uri}")
    return files


def read_split(examples_uri: str, split: str) -> Split:
    """One split of the pipeline's examples, as columns, labels and serialized records."""
    import tensorflow as tf
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(
        split_files(examples_uri, split), compression_type="GZIP")]
    columns: Dict[str, list] = {n: [] for n in CATEGORICAL + NUMERIC}
    labels = []
    for record in serialized:
        feature = tf.train.Example.FromString(record).features.feature
        for name in CATEGORICAL:
            values = feature[name].bytes_list.value if name in feature else []
            columns[name].append(values[0].decode() if values else "")
        for name in NUMERIC:
            values = feature[name].int64_list.value if name in feature else []
            columns[name].append(values[0] if values else -1)  # -1: missing
        labels.append(feature[features.LABEL_KEY].int64_list.value[0])
    return ({k: np.array(v) for k, v in columns.items()}, np.array(labels), serialized)
