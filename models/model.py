"""The Keras model and the Trainer's `run_fn` (referenced as `models.model.run_fn`).

The book's tabular model: small categoricals one-hot, larger ones embedded,
ZIP buckets one-hot, then Dense 100 -> 50 -> 10 (relu) and a sigmoid output.
The book's TF-Hub text embeddings for `issue`/`sub_issue` are replaced by
in-graph vocabularies: nothing is downloaded at run time.

Keras 2 is required (TFX 1.16): scripts/setup.sh makes TF_USE_LEGACY_KERAS=1
hold in every interpreter of the venv, so `tf.keras` is tf-keras here.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx_bsl.public import tfxio

from models import features, private_training, signature_names, signatures

HIDDEN_UNITS = (100, 50, 10)
# The Trainer's custom_config: pipeline/pipeline.py sets these from the config
# (whose defaults are the only ones), so the model never guesses a setting.
CUSTOM_CONFIG_KEYS = (
    "batch_size",
    "learning_rate",
    "seed",
    "validate_every_steps",
    "early_stopping_patience",
)
FIT_TIME_FILE = "fit_time.json"  # in the model run: models.model.fit's record
# What early stopping watches: the loss on the validation split (a split of
# its own, pipeline/splits.py: the Evaluator's eval rows must not pick the model
# they then judge).
STOPPING_METRIC = "val_loss"


def _encoded_input(feature, indices: tf.Tensor) -> tf.Tensor:
    if getattr(feature, "embedding_dim", None):
        return tf.keras.layers.Embedding(
            feature.num_indices, feature.embedding_dim, name=f"{feature.name}_embedding"
        )(indices)
    return tf.keras.layers.CategoryEncoding(
        num_tokens=feature.num_indices, output_mode="one_hot", name=f"{feature.name}_one_hot"
    )(indices)


def _keep_autograph_out_of_keras() -> None:
    """Lets AutoGraph leave Keras 2's own code alone, as TF did before 2.16.

    TF's AutoGraph converts every Python function a traced function calls
    except those of listed libraries; the list names `keras`
    (tensorflow/python/autograph/core/config.py, DoNotConvert('keras')), but
    Keras 2 now ships as `tf_keras`, which it misses. So each `fit` traced
    all of Keras' training code through AutoGraph: 20 of a 22 s training
    step here (tests/models/test_model.py, measured), in every Trainer run.
    The rule below is the same one TF keeps for `keras`; the functions Keras
    traces are converted as before (AutoGraph converts the traced function
    itself whatever the list says), so the graphs compute the same thing.
    TF exposes no public setting for this list; if its module moves, the
    Trainer is only slower."""
    try:
        from tensorflow.python.autograph.core import config
    except ImportError:  # pragma: no cover - a TF that moved its private module
        return
    rule = config.DoNotConvert("tf_keras")
    if not any(str(r) == str(rule) for r in config.CONVERSION_RULES):
        config.CONVERSION_RULES = (rule, *config.CONVERSION_RULES)


def build_keras_model(
    learning_rate: float,
    dp_sgd: private_training.DpSgdSettings | None = None,
    batch_size: int | None = None,
) -> tf.keras.Model:
    """Builds the compiled model; its inputs are Transform's `_xf` outputs.
    With `dp_sgd` (and the `batch_size` its microbatches cut), it trains with
    TF Privacy's DP Adam on a per-example loss; otherwise with Adam."""
    _keep_autograph_out_of_keras()
    inputs = {
        features.transformed_name(f.name): tf.keras.Input(
            shape=(), dtype=tf.int64, name=features.transformed_name(f.name)
        )
        for f in features.MODEL_FEATURES
    }
    encoded = [
        _encoded_input(f, inputs[features.transformed_name(f.name)])
        for f in features.MODEL_FEATURES
    ]
    x = tf.keras.layers.concatenate(encoded)
    for units in HIDDEN_UNITS:
        x = tf.keras.layers.Dense(units, activation="relu")(x)
    output = tf.keras.layers.Dense(1, activation="sigmoid", name=signature_names.PREDICTION_KEY)(x)

    model = tf.keras.Model(inputs=inputs, outputs=output)
    if dp_sgd is None:
        optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
        loss = tf.keras.losses.BinaryCrossentropy()
    else:
        if batch_size is None:
            raise ValueError("private training needs the batch size its microbatches cut")
        optimizer = private_training.optimizer(dp_sgd, learning_rate, batch_size)
        loss = tf.keras.losses.BinaryCrossentropy(reduction=tf.keras.losses.Reduction.NONE)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=[
            tf.keras.metrics.AUC(name="auc"),
            tf.keras.metrics.BinaryAccuracy(name="accuracy"),
        ],
    )
    return model


def _dataset(
    file_pattern: list[str],
    data_accessor: DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    once: bool = False,
) -> tf.data.Dataset:
    """Batches of (transformed features, label): shuffled and repeated
    indefinitely, or `once`, every row a single time in file order."""
    options = tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size,
        label_key=features.TRANSFORMED_LABEL_KEY,
        **({"num_epochs": 1, "shuffle": False} if once else {}),
    )
    return data_accessor.tf_dataset_factory(
        file_pattern,
        options,
        tf_transform_output.transformed_metadata.schema,
    )


def fit(
    model: tf.keras.Model,
    train,
    validation,
    train_steps: int,
    validate_every_steps: int,
    early_stopping_patience: int,
    validation_steps: int | None = None,
    callbacks: tuple = (),
    calibration_rows=None,
) -> dict:
    """Trains `model` for at most `train_steps` steps (rounded up to whole
    validation intervals), validating every `validate_every_steps`; with a
    patience, stops once that many validations in a row did not lower the
    validation loss and keeps the weights of the best one. `train` repeats;
    `validation` is a repeating dataset read for `validation_steps` batches
    or (features, labels) arrays read whole. Then calibrates the kept model
    on the validation rows (`calibrate`): `validation` when arrays, else
    `calibration_rows`, the validation split read once (a dataset that ends). Returns what happened: steps
    run, the step whose weights were kept, the fit's seconds, the calibration."""
    validations = max(1, train_steps // validate_every_steps)
    steps_per_validation = -(-train_steps // validations)
    stopping = []
    if early_stopping_patience:
        stopping = [
            tf.keras.callbacks.EarlyStopping(
                monitor=STOPPING_METRIC,
                patience=early_stopping_patience,
                restore_best_weights=True,
            )
        ]
    started = time.monotonic()
    history = model.fit(
        train,
        steps_per_epoch=steps_per_validation,
        epochs=validations,
        validation_data=validation,
        validation_steps=validation_steps,
        callbacks=[*callbacks, *stopping],
        verbose=2,
    )
    losses = history.history[STOPPING_METRIC]
    kept = losses.index(min(losses)) if stopping else len(losses) - 1
    fit_seconds = time.monotonic() - started
    return {
        "fit_seconds": fit_seconds,
        "steps": len(losses) * steps_per_validation,
        "kept_step": (kept + 1) * steps_per_validation,
        "kept_validation_loss": losses[kept],
        "calibration": calibrate(
            model, validation if calibration_rows is None else calibration_rows
        ),
    }


def _logits(model: tf.keras.Model, validation):
    """The output layer's pre-sigmoid values and the labels of the validation rows."""
    head = model.get_layer(signature_names.PREDICTION_KEY)
    hidden = tf.keras.Model(model.input, head.input)  # the inputs as the model takes them: a dict
    kernel, bias = (w.astype(np.float64) for w in head.get_weights())
    if isinstance(validation, tf.data.Dataset):
        batches = [(hidden(x, training=False).numpy(), y.numpy()) for x, y in validation]
        h = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches]).ravel()
    else:
        x, labels = validation
        h = hidden.predict(x, batch_size=1024, verbose=0)
    return h.astype(np.float64) @ kernel[:, 0] + bias[0], np.asarray(labels, np.float64).ravel()


def platt(logits: np.ndarray, labels: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Platt scaling: the scale and shift of `logits` that maximize the
    likelihood of `labels` (logistic regression on one input; Platt 1999).
    Newton's method with backtracking: an overconfident model's logits
    saturate the sigmoid, where a full Newton step from (1, 0) overshoots
    by orders of magnitude (seen: scale 5.8e11 on a 150-step model)."""

    def loss(scale: float, shift: float) -> float:
        z = scale * logits + shift
        return float(np.mean(np.logaddexp(0, z) - labels * z))  # log loss, stable

    scale, shift = 1.0, 0.0
    current = loss(scale, shift)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(scale * logits + shift)))
        w = p * (1 - p)
        gradient = np.array([np.mean((p - labels) * logits), np.mean(p - labels)])
        hessian = np.array(
            [[np.mean(w * logits * logits), np.mean(w * logits)], [np.mean(w * logits), np.mean(w)]]
        )
        step = np.linalg.solve(hessian + 1e-9 * np.eye(2), gradient)
        length = 1.0
        while length > 1e-10 and loss(scale - length * step[0], shift - length * step[1]) > current:
            length /= 2
        if length <= 1e-10:
            break  # no step lowers the loss: at the minimum
        scale, shift = scale - length * step[0], shift - length * step[1]
        previous, current = current, loss(scale, shift)
        if previous - current < 1e-12:
            break
    return float(scale), float(shift)


def calibrate(model: tf.keras.Model, validation) -> dict:
    """Makes the model's probability mean what it says on the validation
    rows: Platt scaling folded into the output layer (sigmoid(a z + b) is the
    same layer with kernel a w and bias a c + b), so the saved model, its
    signatures and its ranking (AUC) are unchanged in form. Early stopping
    keeps weights from before the output's bias settled: the kept model
    predicted 0.16 on average where 0.18-0.20 happened (docs/benchmarks.md).
    A model that does not rank the validation rows (scale <= 0) is left as
    it is: calibrating it would invert its ranking."""
    logits, labels = _logits(model, validation)
    scale, shift = platt(logits, labels)
    if not scale > 0:
        return {"skipped": f"the model does not rank the validation rows (scale {scale:.3f})"}
    head = model.get_layer(signature_names.PREDICTION_KEY)
    kernel, bias = head.get_weights()
    head.set_weights([kernel * scale, bias * scale + shift])
    return {"scale": scale, "shift": shift, "rows": len(labels)}


def run_fn(fn_args: FnArgs) -> None:
    """Trains the model and saves it with the serving signatures."""
    custom = fn_args.custom_config or {}
    missing = [key for key in CUSTOM_CONFIG_KEYS if key not in custom]
    if missing:
        raise ValueError(
            f"the Trainer's custom_config lacks {', '.join(missing)}: build the pipeline with "
            "pipeline.pipeline.create_pipeline, which sets them from PipelineConfig"
        )
    batch_size = int(custom["batch_size"])
    tf.keras.utils.set_random_seed(int(custom["seed"]))
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)

    train = _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, batch_size)
    validation = _dataset(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, batch_size
    )

    dp_sgd = None
    if custom.get(private_training.PRIVATE_TRAINING_KEY):
        dp_sgd = private_training.DpSgdSettings(**custom[private_training.PRIVATE_TRAINING_KEY])
        # Before any training: the accounting needs the rows the batches are
        # sampled from, and a delta that is not below 1 / rows is no guarantee.
        rows = private_training.count_rows(fn_args.train_files)
        private_training.check_delta(dp_sgd.delta, rows)
    model = build_keras_model(float(custom["learning_rate"]), dp_sgd, batch_size)
    trained = fit(
        model,
        train,
        validation,
        fn_args.train_steps,
        int(custom["validate_every_steps"]),
        int(custom["early_stopping_patience"]),
        validation_steps=fn_args.eval_steps,
        callbacks=(tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir),),
        calibration_rows=_dataset(
            fn_args.eval_files,
            fn_args.data_accessor,
            tf_transform_output,
            batch_size,
            once=True,
        ),
    )
    logging.info(
        "Trained %d steps, kept the weights of step %d (validation loss %.4f)",
        trained["steps"],
        trained["kept_step"],
        trained["kept_validation_loss"],
    )
    # The run summary states what training did (components/private_training.py
    # copies it onto the Model); the benchmark separates training from
    # pipeline overhead with its seconds.
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, FIT_TIME_FILE), "w") as f:
        json.dump({**trained, "batch_size": batch_size}, f)
    if dp_sgd is not None:
        # Every step run spent privacy, kept or not.
        record = private_training.accounting(dp_sgd, trained["steps"], batch_size, rows)
        private_training.write_accounting(fn_args.model_run_dir, record)
        logging.info(
            "Private training: epsilon %.3f at delta %g (%s)",
            record["epsilon"],
            record["delta"],
            private_training.ACCOUNTANT,
        )
    model.save(
        fn_args.serving_model_dir,
        save_format="tf",
        # Serving and evaluation never train on: the optimizer's state is dead
        # weight, and a DP optimizer's class (TF Privacy's) is one a loader
        # such as TFMA's could not rebuild ("Unknown optimizer").
        include_optimizer=False,
        signatures=signatures.serving_signatures(model, tf_transform_output),
    )
