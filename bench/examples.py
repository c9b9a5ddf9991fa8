"""The pipeline's own splits (CsvExampleGen's output), read without TFX.

Every baseline and the bare script use exactly the rows the pipeline used.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path

import numpy as np

from models import features
from settings import beam
from settings.configs import PipelineConfig

# Every raw input: text (categories and dates) or integers (-1: missing).
TEXT = [n for n in features.RAW_INPUT_NAMES if n not in features.INTEGER_INPUT_NAMES]
NUMERIC = list(features.INTEGER_INPUT_NAMES)
# (columns: {feature: values}, labels, serialized tf.Examples) of one split.
Split = tuple[dict[str, np.ndarray], np.ndarray, list[bytes]]


def split_files(examples_uri: str, split: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        raise FileNotFoundError(f"no {split} split under {examples_uri}")
    return files


def read_split(examples_uri: str, split: str) -> Split:
    """One split of the pipeline's examples, as columns, labels and serialized records."""
    import tensorflow as tf

    serialized = [
        r.numpy()
        for r in tf.data.TFRecordDataset(split_files(examples_uri, split), compression_type="GZIP")
    ]
    columns: dict[str, list] = {n: [] for n in TEXT + NUMERIC}
    labels = []
    for record in serialized:
        feature = tf.train.Example.FromString(record).features.feature
        for name in TEXT:
            values = feature[name].bytes_list.value if name in feature else []
            columns[name].append(values[0].decode() if values else "")
        for name in NUMERIC:
            values = feature[name].int64_list.value if name in feature else []
            columns[name].append(values[0] if values else -1)  # -1: missing
        labels.append(feature[features.LABEL_KEY].int64_list.value[0])
    return ({k: np.array(v) for k, v in columns.items()}, np.array(labels), serialized)


def concatenate(splits: list[Split]) -> Split:
    columns, labels, serialized = zip(*splits, strict=True)
    return (
        {name: np.concatenate([c[name] for c in columns]) for name in columns[0]},
        np.concatenate(labels),
        [record for records in serialized for record in records],
    )


def span_examples(config: PipelineConfig, span: int, work_dir: Path) -> Split:
    """Every row of `span`, encoded by the pipeline's own CsvExampleGen (run
    alone, in-process, with its own ML Metadata under `work_dir`), all hash
    splits together: a test set from months the model never saw."""
    from ml_metadata import metadata_store
    from tfx.components import CsvExampleGen
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.pipeline import Pipeline

    from pipeline import pipeline, splits
    from settings import metadata

    span_config = dataclasses.replace(
        config,
        span=span,
        pipeline_root=str(work_dir / "pipeline_root"),
        metadata_path=str(work_dir / "metadata.sqlite"),
        mysql_host=None,
    )  # a fresh store, whatever the config
    example_gen = next(
        c for c in pipeline.create_components(span_config) if isinstance(c, CsvExampleGen)
    )
    LocalDagRunner().run(
        Pipeline(
            pipeline_name=f"{config.pipeline_name}-span-{span}",
            components=[example_gen],
            pipeline_root=span_config.pipeline_root,
            metadata_connection_config=metadata.connection_config(span_config),
            beam_pipeline_args=beam.pipeline_args(config),
        )
    )
    store = metadata_store.MetadataStore(metadata.connection_config(span_config))
    (examples,) = store.get_artifacts_by_type("Examples")  # a fresh store: this run's only
    return concatenate([read_split(examples.uri, split) for split in splits.HASH_BUCKETS])
