"""Differentially private training: TF Privacy's DP-SGD optimizer and the
epsilon it spends, accounted by dp-accounting (docs/privacy.md).

The Trainer's custom_config carries the DP settings under PRIVATE_TRAINING_KEY
(`dp_sgd_settings` builds them from the config, None when training is not
private); `run_fn` (models/model.py) builds the optimizer here, counts the
training rows, refuses a delta that is not below 1 / rows, and writes the
accounting next to the model run (ACCOUNTING_FILE), which the Trainer's
executor records on the Model artifact (components/private_training.py).

TF Privacy 0.8.12's package `__init__` imports its TF1 estimators, which TF
2.16 cannot import; its own switch (`sys.skip_tf_privacy_import`, "useful for
standalone scripts") skips them, and the optimizer module is imported directly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any

PRIVATE_TRAINING_KEY = "private_training"
# The Evaluator's parameter holding the privacy budget (components/private_training.py).
MAX_EPSILON_KEY = "max_epsilon"
ACCOUNTING_FILE = "privacy_accounting.json"
# The accountant and the event it composes, named in every record.
ACCOUNTANT = "RDP (dp-accounting), Poisson-sampled Gaussian mechanism per step"


@dataclasses.dataclass(frozen=True)
class DpSgdSettings:
    """The DP-SGD settings the Trainer reads (settings/configs.py validates
    them; `microbatches` None: one per example)."""

    noise_multiplier: float
    l2_norm_clip: float
    microbatches: int | None
    delta: float


def dp_sgd_settings(config) -> dict[str, Any] | None:
    """The Trainer's custom_config entry for `config` (a GraphSettings), None
    when private training is off."""
    if not config.private_training:
        return None
    return dataclasses.asdict(
        DpSgdSettings(
            noise_multiplier=config.dp_noise_multiplier,
            l2_norm_clip=config.dp_l2_norm_clip,
            microbatches=config.dp_microbatches,
            delta=config.dp_delta,
        )
    )


def settings_text(settings: dict[str, Any] | None) -> str:
    """The Trainer's DP settings (its custom_config entry) as a report shows them."""
    if not settings:
        return "off"
    microbatches = settings["microbatches"] or "one per example"
    return (
        f"DP-SGD: noise multiplier {settings['noise_multiplier']:g}, clipping norm "
        f"{settings['l2_norm_clip']:g}, microbatches {microbatches}, delta {settings['delta']:g}"
    )


def optimizer(settings: DpSgdSettings, learning_rate: float, batch_size: int):
    """TF Privacy's DP Keras Adam. The loss it is given must be per example
    (reduction NONE): it clips each microbatch's gradient itself."""
    sys.skip_tf_privacy_import = True  # type: ignore[attr-defined]
    from tensorflow_privacy.privacy.optimizers import dp_optimizer_keras

    return dp_optimizer_keras.DPKerasAdamOptimizer(
        l2_norm_clip=settings.l2_norm_clip,
        noise_multiplier=settings.noise_multiplier,
        num_microbatches=settings.microbatches or batch_size,
        learning_rate=learning_rate,
    )


def check_delta(delta: float, rows: int) -> None:
    """Refuses a delta that is not below 1 / rows: at delta >= 1/n a mechanism
    that publishes one whole training example at random is (0, delta)-DP."""
    if rows <= 0:
        raise ValueError("private training: the window has no training rows")
    if not delta < 1 / rows:
        raise ValueError(
            f"setting dp_delta: {delta:g} is not below 1 / {rows:,} training rows "
            f"({1 / rows:.2g}); choose a smaller --dp-delta"
        )


def epsilon(settings: DpSgdSettings, steps: int, batch_size: int, rows: int) -> float:
    """Epsilon at `settings.delta` after `steps` steps of `batch_size` from
    `rows` training rows, each step a Poisson-sampled Gaussian mechanism
    (sampling rate batch / rows), composed by the RDP accountant: TF
    Privacy's own accounting (compute_dp_sgd_privacy_lib). As there, microbatches
    of more than one example double the sensitivity under add-or-remove
    adjacency, i.e. halve the effective noise multiplier."""
    import dp_accounting

    noise = settings.noise_multiplier
    microbatches = settings.microbatches or batch_size
    if microbatches < batch_size:
        noise /= 2
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(
            sampling_probability=min(1.0, batch_size / rows),
            event=dp_accounting.GaussianDpEvent(noise),
        ),
        steps,
    )
    return dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(settings.delta)


def noise_multiplier_for(
    target_epsilon: float, steps: int, batch_size: int, rows: int, delta: float
) -> float:
    """The smallest noise multiplier (to 0.1%) whose epsilon after `steps`
    per-example-clipped steps is at most `target_epsilon`: epsilon falls as
    the noise grows, so a bisection finds it."""

    def spent(noise: float) -> float:
        return epsilon(DpSgdSettings(noise, 1.0, None, delta), steps, batch_size, rows)

    low, high = 0.05, 100.0
    if spent(high) > target_epsilon:
        raise ValueError(f"epsilon {target_epsilon} needs a noise multiplier above {high}")
    while high - low > 1e-3 * high:
        middle = (low + high) / 2
        low, high = (low, middle) if spent(middle) <= target_epsilon else (middle, high)
    return high


def accounting(settings: DpSgdSettings, steps: int, batch_size: int, rows: int) -> dict[str, Any]:
    """What a private model records: its epsilon and every number it is computed from."""
    return {
        "epsilon": epsilon(settings, steps, batch_size, rows),
        "delta": settings.delta,
        "noise_multiplier": settings.noise_multiplier,
        "l2_norm_clip": settings.l2_norm_clip,
        "microbatches": settings.microbatches or batch_size,
        "batch_size": batch_size,
        "steps": steps,
        "train_rows": rows,
        "sampling_rate": batch_size / rows,
        "accountant": ACCOUNTANT,
    }


def count_rows(file_patterns: list[str]) -> int:
    """Examples in the gzipped TFRecord files the patterns match (Transform's
    outputs): the rows the sampling rate is computed from."""
    import tensorflow as tf

    files = [name for pattern in file_patterns for name in tf.io.gfile.glob(pattern)]
    if not files:
        return 0
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return int(dataset.reduce(0, lambda count, _: count + 1))


def write_accounting(model_run_dir: str, record: dict[str, Any]) -> None:
    import tensorflow as tf

    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, ACCOUNTING_FILE), "w") as f:
        json.dump(record, f, indent=1)


def read_accounting(model_run_dir: str) -> dict[str, Any] | None:
    """The record `run_fn` wrote, None for a model trained without DP."""
    import tensorflow as tf

    path = os.path.join(model_run_dir, ACCOUNTING_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def parse_accounting(text: str | None) -> dict[str, Any] | None:
    """The accounting from a Model's PRIVACY_ACCOUNTING property (its text,
    as a TFX artifact or an MLMD record holds it); None: not private."""
    return json.loads(text) if text else None


def describe(record: dict[str, Any] | None) -> str:
    """One line for summaries, reports and model cards."""
    if record is None:
        return "trained without differential privacy: no privacy guarantee (no epsilon)"
    microbatches = (
        "per-example clipping"
        if record["microbatches"] == record["batch_size"]
        else f"{record['microbatches']} microbatches per batch"
    )
    return (
        f"DP-SGD: epsilon {record['epsilon']:.2f} at delta {record['delta']:g}, from "
        f"{record['steps']:,} steps of {record['batch_size']} sampled from "
        f"{record['train_rows']:,} training rows (noise multiplier "
        f"{record['noise_multiplier']:g}, clipping norm {record['l2_norm_clip']:g}, "
        f"{microbatches}; {record['accountant']})"
    )


def over_budget(record: dict[str, Any] | None, max_epsilon: float) -> str | None:
    """Why a model with this accounting may not be blessed, or None."""
    if record is None:
        return (
            f"trained without differential privacy, so its epsilon has no bound, and the "
            f"privacy budget is epsilon {max_epsilon:g} (--max-epsilon)"
        )
    if record["epsilon"] > max_epsilon:
        return (
            f"epsilon {record['epsilon']:.2f} (at delta {record['delta']:g}) is over the "
            f"privacy budget of {max_epsilon:g} (--max-epsilon)"
        )
    return None
