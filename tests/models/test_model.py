import numpy as np
import tensorflow as tf

from models import features, model
from settings.configs import PipelineConfig


def _batch(size=32, seed=0):
    rng = np.random.default_rng(seed)
    inputs = {
        features.transformed_name(f.name): rng.integers(0, f.num_indices, size)
        for f in features.MODEL_FEATURES
    }
    labels = rng.integers(0, 2, size)
    return inputs, labels


def test_tf_keras_is_keras_2():
    # TFX 1.16 needs Keras 2; TF_USE_LEGACY_KERAS=1 routes tf.keras to tf-keras.
    assert tf.keras.Model.__module__.startswith("tf_keras."), tf.keras.Model.__module__


def test_model_takes_one_input_per_spec_feature():
    keras_model = model.build_keras_model(PipelineConfig().learning_rate)
    assert sorted(keras_model.input) == sorted(
        features.transformed_name(n) for n in features.MODEL_FEATURE_NAMES
    )


def test_one_training_step_changes_the_weights_and_outputs_probabilities():
    keras_model = model.build_keras_model(PipelineConfig().learning_rate)
    inputs, labels = _batch()
    before = [w.copy() for w in keras_model.get_weights()]

    history = keras_model.fit(inputs, labels, batch_size=32, epochs=1, verbose=0)

    assert np.isfinite(history.history["loss"][0])
    assert any(
        not np.array_equal(a, b) for a, b in zip(before, keras_model.get_weights(), strict=True)
    )
    probabilities = keras_model.predict(inputs, verbose=0)
    assert probabilities.shape == (32, 1)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_large_vocabularies_are_embedded_and_small_ones_one_hot():
    keras_model = model.build_keras_model(PipelineConfig().learning_rate)
    layer_names = {layer.name for layer in keras_model.layers}
    for feature in features.CATEGORICAL_FEATURES:
        kind = "embedding" if feature.embedding_dim else "one_hot"
        assert f"{feature.name}_{kind}" in layer_names


def test_keras_own_code_is_left_to_keras_by_autograph():
    # tf_keras is Keras 2 under a new name that TF's AutoGraph list misses;
    # converting it made each traced fit ~10x slower (models/model.py).
    from tensorflow.python.autograph.impl import conversion
    from tf_keras.src.engine import training

    model.build_keras_model(PipelineConfig().learning_rate)
    assert conversion.is_allowlisted(training.Model.train_step)


def _dataset(inputs, labels, batch_size=32):
    return (
        tf.data.Dataset.from_tensor_slices((inputs, labels.astype(np.float32)))
        .repeat()
        .batch(batch_size)
    )


def test_training_stops_when_validation_loss_stops_falling_and_keeps_the_best_weights():
    # Train on "always disputed", validate on "never": after the first
    # validation every one is worse, so training stops `patience` later and
    # keeps the first validation's weights.
    tf.keras.utils.set_random_seed(0)
    inputs, _ = _batch(size=64)
    keras_model = model.build_keras_model(0.01)
    trained = model.fit(
        keras_model,
        _dataset(inputs, np.ones(64)),
        (inputs, np.zeros(64, dtype=np.float32)),
        train_steps=1000,
        validate_every_steps=10,
        early_stopping_patience=2,
    )
    assert (trained["steps"], trained["kept_step"]) == (30, 10)
    kept_loss = keras_model.evaluate(inputs, np.zeros(64), verbose=0)[0]
    assert np.isclose(kept_loss, trained["kept_validation_loss"], rtol=1e-4)


def test_without_patience_every_step_is_trained_and_the_last_weights_kept():
    inputs, _ = _batch(size=64)
    trained = model.fit(
        model.build_keras_model(0.01),
        _dataset(inputs, np.ones(64)),
        (inputs, np.zeros(64, dtype=np.float32)),
        train_steps=45,
        validate_every_steps=10,
        early_stopping_patience=0,
    )
    # 45 steps in 4 validations: rounded up to whole intervals of 12.
    assert (trained["steps"], trained["kept_step"]) == (48, 48)


def test_platt_scaling_recovers_the_scale_and_shift_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, 20000)
    labels = rng.random(20000) < 1 / (1 + np.exp(-(2.0 * logits - 1.0)))
    scale, shift = model.platt(logits, labels.astype(float))
    assert abs(scale - 2.0) < 0.1 and abs(shift + 1.0) < 0.1


def test_the_trained_model_predicts_the_validation_rows_rate_on_average():
    # At the likelihood's maximum the shift's gradient is zero: the mean
    # calibrated probability on the validation rows is their positive rate,
    # whatever training left it at (here trained toward 0.5).
    tf.keras.utils.set_random_seed(0)
    inputs, labels = _batch(size=256)
    validation, _ = _batch(size=200, seed=1)
    validation_labels = (np.arange(200) < 30).astype(np.float32)  # a rate of 0.15
    keras_model = model.build_keras_model(0.01)
    trained = model.fit(
        keras_model,
        _dataset(inputs, labels),
        (validation, validation_labels),
        train_steps=20,
        validate_every_steps=20,
        early_stopping_patience=0,
    )
    assert trained["calibration"]["rows"] == 200
    predicted = keras_model.predict(validation, verbose=0).ravel()
    assert abs(predicted.mean() - 0.15) < 1e-3
    # The scaling lives in the output layer: the model's form is unchanged.
    fresh = model.build_keras_model(0.01)
    assert [w.shape for w in keras_model.get_weights()] == [w.shape for w in fresh.get_weights()]


def test_platt_scaling_tames_an_overconfident_model():
    # Logits 20x too large (a model trained far past its best): a plain
    # Newton step from scale 1 overshoots; the fit must land near 1/20.
    rng = np.random.default_rng(1)
    true = rng.normal(0, 1, 5000)
    labels = (rng.random(5000) < 1 / (1 + np.exp(-(true - 1.5)))).astype(float)
    scale, shift = model.platt(20 * true, labels)
    assert abs(scale - 0.05) < 0.01 and abs(shift + 1.5) < 0.15
