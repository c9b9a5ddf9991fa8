"""The bare script's numpy preprocessing (a deliberate copy: the script runs
without TFX) computes the features the pipeline's Transform graph computes,
on the shared end-to-end run's train split. A derived feature added to
models/preprocessing.py but not mirrored here fails this test."""

import os

import numpy as np
import pytest

from bench import bare_keras, examples, quality
from models import features
from reporting import summary

pytestmark = pytest.mark.e2e


def _one_to_one(left: np.ndarray, right: np.ndarray) -> bool:
    """Do the two index columns group the rows the same way? (Vocabulary
    order among equally frequent values is the two implementations' own.)"""
    pairs = set(zip(left.tolist(), right.tolist(), strict=True))
    return len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_the_bare_scripts_features_are_the_transform_graphs(e2e):
    import tensorflow as tf

    config, _ = e2e
    run = summary.run_summary(config)
    train = examples.read_split(run.nodes["CsvExampleGen"].artifact("examples").uri, "train")
    model = run.nodes["Trainer"].artifact("model").uri
    loaded = tf.saved_model.load(os.path.join(model, "Format-Serving"))
    transform_dir = run.nodes["Transform"].artifact("transform_graph").uri
    pipeline = quality.featured(loaded, transform_dir, train).features
    bare = bare_keras.transform(train[0], train[0])

    assert set(bare) == set(pipeline)
    for derived in features.DERIVED_FEATURES:
        name = features.transformed_name(derived.name)
        if isinstance(derived, features.RegionFeature | features.CrossFeature):
            # Values past the vocabulary share one index in both; ties at
            # the vocabulary's edge may put a different value there.
            kept = pipeline[name] < derived.vocab_size // 2
            assert kept.mean() > 0.5, name
            assert _one_to_one(bare[name][kept], pipeline[name][kept]), name
        else:
            assert bare[name].tolist() == pipeline[name].tolist(), name
