"""Data minimization, measured: what the quasi-identifiers (ZIP code, state)
add to the model, at which precision (docs/privacy.md).

    python -m bench.minimization --examples <CsvExampleGen examples uri>

The pipeline's Keras model (bench/bare_keras.py: the same architecture,
steps and preprocessing, without TFX) is trained on the split's train rows
with each quasi-identifier kept, coarsened or withheld, and scored on its
test rows; a withheld feature is missing in every row (a constant input
carries no information), so the model and the feature spec stay as they are.
Each AUC has a 95% bootstrap interval and its paired difference from the
model with everything. Python -m bench.privacy runs this on its own split.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import numpy as np

from bench import bare_keras, examples, quality

MISSING_ZIP = -1  # bench/examples.py: a missing integer


def _zip_digits(digits: int) -> Callable[[dict], dict]:
    """ZIP codes cut to their first `digits` digits (the rest as zeros)."""

    def coarsen(columns: dict) -> dict:
        zips = columns["zip_code"]
        scale = 10 ** (5 - digits)
        return {**columns, "zip_code": np.where(zips >= 0, zips // scale * scale, MISSING_ZIP)}

    return coarsen


def _without(*names: str) -> Callable[[dict], dict]:
    def withhold(columns: dict) -> dict:
        out = dict(columns)
        for name in names:
            blank = MISSING_ZIP if name == "zip_code" else ""
            out[name] = np.full(len(columns[name]), blank, dtype=columns[name].dtype)
        return out

    return withhold


# (what the model is given, how the columns become that); the first is the pipeline's.
VARIANTS: tuple[tuple[str, Callable[[dict], dict]], ...] = (
    ("state + 5-digit ZIP (the pipeline today)", lambda columns: columns),
    ("state + 3-digit ZIP", _zip_digits(3)),
    ("state + 1-digit ZIP", _zip_digits(1)),
    ("state, no ZIP", _without("zip_code")),
    ("3-digit ZIP, no state", lambda c: _without("state")(_zip_digits(3)(c))),
    ("neither state nor ZIP", _without("state", "zip_code")),
)


def measure(
    train: examples.Split, validation: examples.Split, test: examples.Split, settings
) -> list[dict]:
    """One row per variant: the test AUC, its interval, and the paired
    difference from the first variant's model. Trained with the pipeline's
    `settings` (a GraphSettings), stopping early on `validation`."""
    rows, reference = [], None
    for name, view in VARIANTS:
        print(f"[bench] minimization: {name}", flush=True)
        probabilities, _ = bare_keras.fit_and_predict(
            view(train[0]), train[1], (view(validation[0]), validation[1]), view(test[0]), settings
        )
        if reference is None:
            reference = probabilities
        interval, difference = quality.auc_interval(test[1], probabilities, reference)
        rows.append(
            {
                "given": name,
                "auc": quality.auc(test[1], probabilities),
                "auc_interval": interval,
                "minus_pipeline": difference,
            }
        )
    return rows


def render(rows: list[dict], train_rows: int, test_rows: int, steps: int) -> str:
    lines = [
        "| the model is given | test AUC [95%] | minus today's [95%, paired] |",
        "| --- | --- | --- |",
    ]
    for row in rows:
        low, high = row["auc_interval"]
        d_low, d_high = row["minus_pipeline"]
        lines.append(
            f"| {row['given']} | {row['auc']:.3f} [{low:.3f}, {high:.3f}] | "
            f"[{d_low:+.3f}, {d_high:+.3f}] |"
        )
    lines.append(
        f"\nThe pipeline's Keras model, at most {steps:,} steps (early stopping), trained on {train_rows:,} rows and "
        f"scored on {test_rows:,} (the newest span's splits); "
        f"{quality.BOOTSTRAP_RESAMPLES} bootstrap resamples."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import dataclasses

    from pipeline import splits
    from settings.configs import PipelineConfig

    defaults = PipelineConfig()
    parser = argparse.ArgumentParser(
        prog="python -m bench.minimization",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--examples", required=True, help="CsvExampleGen examples artifact uri")
    parser.add_argument("--steps", type=int, default=defaults.train_steps)
    args = parser.parse_args(argv)
    train, validation, test = (
        examples.read_split(args.examples, split)
        for split in (splits.TRAIN, splits.VALIDATION, splits.TEST)
    )
    rows = measure(train, validation, test, dataclasses.replace(defaults, train_steps=args.steps))
    print(render(rows, len(train[1]), len(test[1]), args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
