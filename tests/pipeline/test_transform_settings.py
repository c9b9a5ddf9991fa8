"""Transform without TFDV statistics and analyzer cache (the pipeline's
settings, for speed) writes the same transform graph and transformed examples
as TFX's defaults, on the shared end-to-end run's examples."""

from pathlib import Path

import pytest
from tfx.components.transform import executor
from tfx.types import standard_artifacts

from pipeline import pipeline, splits
from reporting import summary

pytestmark = pytest.mark.e2e

_STATISTICS_OUTPUTS = {
    "pre_transform_schema": standard_artifacts.Schema,
    "pre_transform_stats": standard_artifacts.ExampleStatistics,
    "post_transform_schema": standard_artifacts.Schema,
    "post_transform_stats": standard_artifacts.ExampleStatistics,
    "post_transform_anomalies": standard_artifacts.ExampleAnomalies,
    "updated_analyzer_cache": standard_artifacts.TransformCache,
}


def _artifact(kind, uri: Path, **properties):
    artifact = kind()
    artifact.uri = str(uri)
    for name, value in properties.items():
        setattr(artifact, name, value)
    uri.mkdir(parents=True)
    return artifact


def _transform(config, run, out: Path, tfx_defaults: bool) -> Path:
    (transform,) = [c for c in pipeline.create_components(config) if c.id == "Transform"]
    properties = dict(transform.exec_properties)
    examples = standard_artifacts.Examples()
    examples.set_mlmd_artifact(run.nodes["CsvExampleGen"].artifact("examples"))
    schema = standard_artifacts.Schema()
    schema.set_mlmd_artifact(run.nodes["ImportSchemaGen"].artifact("schema"))
    outputs = {
        "transform_graph": [_artifact(standard_artifacts.TransformGraph, out / "graph")],
        "transformed_examples": [_artifact(standard_artifacts.Examples, out / "examples")],
    }
    if tfx_defaults:
        properties.update(disable_statistics=0)
        outputs.update(
            {key: [_artifact(kind, out / key)] for key, kind in _STATISTICS_OUTPUTS.items()}
        )
    else:
        assert properties["disable_statistics"] == 1
    executor.Executor().Do({"examples": [examples], "schema": [schema]}, outputs, properties)
    return out


def _files(root: Path, *parts: str) -> dict:
    base = root.joinpath(*parts)
    return {
        str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()
    }


def _records(split_dir: Path) -> list:
    """The split's examples, canonically serialized and sorted (feature-map
    order and file sharding are not outputs)."""
    import tensorflow as tf

    files = sorted(str(p) for p in split_dir.glob("*.gz"))
    assert files, split_dir
    return sorted(
        tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
        for r in tf.data.TFRecordDataset(files, compression_type="GZIP")
    )


def test_the_faster_transform_settings_write_the_same_outputs(e2e, tmp_path):
    config, _ = e2e
    run = summary.run_summary(config)
    faster = _transform(config, run, tmp_path / "faster", tfx_defaults=False)
    default = _transform(config, run, tmp_path / "default", tfx_defaults=True)

    # Vocabularies (the transform graph's assets) byte for byte...
    vocabularies = _files(faster, "graph", "transform_fn", "assets")
    assert vocabularies and vocabularies == _files(default, "graph", "transform_fn", "assets")
    # ...and every split's transformed examples.
    for split in splits.HASH_BUCKETS:
        assert _records(faster / "examples" / f"Split-{split}") == _records(
            default / "examples" / f"Split-{split}"
        ), split
    # The statistics TFX would have computed are what the setting leaves out.
    assert any((default / "post_transform_stats").rglob("*"))
