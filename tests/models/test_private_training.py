"""DP-SGD's pieces on this project's pinned set: TF Privacy 0.8.12's Keras
optimizer on TF 2.16 and tf-keras (installed past its own pins,
requirements-overrides.txt), and epsilon as TF Privacy itself accounts it."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from models import model, private_training
from tests.models.test_model import _batch

SETTINGS = private_training.DpSgdSettings(
    noise_multiplier=1.1, l2_norm_clip=1.0, microbatches=None, delta=1e-5
)


def test_the_dp_optimizer_trains_the_pipeline_model_on_this_tensorflow():
    keras_model = model.build_keras_model(1e-2, SETTINGS, batch_size=32)
    assert type(keras_model.optimizer).__module__.startswith("tensorflow_privacy.")
    inputs, labels = _batch(size=64)
    before = [w.copy() for w in keras_model.get_weights()]

    history = keras_model.fit(inputs, labels, batch_size=32, epochs=1, verbose=0)

    assert np.isfinite(history.history["loss"][0])
    assert any(
        not np.array_equal(a, b) for a, b in zip(before, keras_model.get_weights(), strict=True)
    )


def test_the_dp_optimizer_clips_and_noises_what_plain_adam_would_not():
    """Same data, same initial weights: with noise the step differs from Adam's."""
    inputs, labels = _batch(size=32)
    tf.keras.utils.set_random_seed(0)
    plain = model.build_keras_model(1e-2)
    tf.keras.utils.set_random_seed(0)
    private = model.build_keras_model(1e-2, SETTINGS, batch_size=32)
    private.set_weights(plain.get_weights())

    plain.fit(inputs, labels, batch_size=32, epochs=1, verbose=0, shuffle=False)
    private.fit(inputs, labels, batch_size=32, epochs=1, verbose=0, shuffle=False)

    assert any(
        not np.allclose(a, b)
        for a, b in zip(plain.get_weights(), private.get_weights(), strict=True)
    )


def _tf_privacy_epsilon(steps, batch_size, rows, noise, delta, microbatching):
    sys.skip_tf_privacy_import = True
    from tensorflow_privacy.privacy.analysis import compute_dp_sgd_privacy_lib

    return compute_dp_sgd_privacy_lib._compute_dp_sgd_example_privacy(
        num_epochs=steps * batch_size / rows,
        noise_multiplier=noise,
        example_delta=delta,
        used_microbatching=microbatching,
        poisson_subsampling_probability=batch_size / rows,
    )


@pytest.mark.parametrize("microbatches", [None, 16])
def test_epsilon_is_what_tf_privacy_accounts(microbatches):
    # 512 steps of 64 from 16,384 rows: exactly 2 epochs at sampling rate 1/256.
    settings = private_training.DpSgdSettings(1.1, 1.0, microbatches, 1e-5)

    ours = private_training.epsilon(settings, steps=512, batch_size=64, rows=16384)

    expected = _tf_privacy_epsilon(512, 64, 16384, 1.1, 1e-5, microbatching=bool(microbatches))
    assert ours == pytest.approx(expected, rel=1e-9)
    assert 0 < ours < 10


def test_more_noise_fewer_steps_spend_less_epsilon():
    def spent(noise, steps):
        return private_training.epsilon(
            private_training.DpSgdSettings(noise, 1.0, None, 1e-5), steps, 64, 20000
        )

    assert spent(2.0, 500) < spent(1.0, 500) < spent(0.6, 500)
    assert spent(1.0, 100) < spent(1.0, 500)


def test_a_delta_not_below_one_over_the_rows_is_refused_before_training():
    private_training.check_delta(1e-4, 9999)
    with pytest.raises(ValueError, match=r"setting dp_delta: 0.001 is not below 1 / 1,000"):
        private_training.check_delta(1e-3, 1000)
    with pytest.raises(ValueError, match="no training rows"):
        private_training.check_delta(1e-5, 0)


def test_rows_are_counted_in_gzipped_tfrecords(tmp_path):
    for part, count in (("a", 3), ("b", 4)):
        with tf.io.TFRecordWriter(
            str(tmp_path / f"part-{part}.gz"), tf.io.TFRecordOptions(compression_type="GZIP")
        ) as writer:
            for _ in range(count):
                writer.write(b"x")
    assert private_training.count_rows([str(tmp_path / "part-*.gz")]) == 7
    assert private_training.count_rows([str(tmp_path / "none-*")]) == 0


def test_the_accounting_record_holds_what_epsilon_is_computed_from():
    record = private_training.accounting(SETTINGS, steps=300, batch_size=64, rows=20000)
    assert record["epsilon"] == private_training.epsilon(SETTINGS, 300, 64, 20000)
    assert record["microbatches"] == 64 and record["sampling_rate"] == 64 / 20000
    line = private_training.describe(record)
    assert line.startswith(f"DP-SGD: epsilon {record['epsilon']:.2f} at delta 1e-05")
    assert "300 steps of 64 sampled from 20,000 training rows" in line
    assert "per-example clipping" in line


def test_the_budget_refuses_a_model_over_it_and_one_without_privacy():
    record = private_training.accounting(SETTINGS, steps=300, batch_size=64, rows=20000)
    assert private_training.over_budget(record, record["epsilon"] + 0.01) is None
    assert "is over the privacy budget of" in private_training.over_budget(
        record, record["epsilon"] - 0.01
    )
    assert "trained without differential privacy" in private_training.over_budget(None, 8.0)


def test_the_trainer_setting_is_none_unless_private():
    from settings.configs import PipelineConfig

    assert private_training.dp_sgd_settings(PipelineConfig()) is None
    settings = private_training.dp_sgd_settings(
        PipelineConfig(private_training=True, dp_microbatches=32)
    )
    assert private_training.DpSgdSettings(**settings).microbatches == 32
    assert "microbatches 32" in private_training.settings_text(settings)
    assert private_training.settings_text(None) == "off"


def test_the_noise_for_a_target_epsilon_spends_at_most_it():
    noise = private_training.noise_multiplier_for(
        4.0, steps=2000, batch_size=64, rows=29000, delta=1e-5
    )
    settings = private_training.DpSgdSettings(noise, 1.0, None, 1e-5)
    assert private_training.epsilon(settings, 2000, 64, 29000) <= 4.0
    less = private_training.DpSgdSettings(noise * 0.99, 1.0, None, 1e-5)
    assert private_training.epsilon(less, 2000, 64, 29000) > 4.0
