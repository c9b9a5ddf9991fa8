"""Utility against privacy, and leakage, measured (docs/privacy.md).

    python -m bench.privacy                          # all rows, 2000 steps, epsilon 8, 4, 2, 1
    python -m bench.privacy --rows 3000 --train-steps 150 --epsilons 4   # smoke

Runs the pipeline (the Beam runner, as a user does) once without DP and once
per target epsilon with --private-training, the noise multiplier chosen for
that epsilon on the window's training rows (models/private_training.py); the
runs share one store, so only the Trainer onwards runs again. Every model is
scored on the same held-out rows (the newest span's test split), next to the
majority class and a logistic regression fit on the same train split, with
95% bootstrap intervals; a membership-inference attack (TF Privacy's
privacy_tests: threshold attacks on loss and entropy, a logistic-regression
attacker) tries to tell the newest span's train rows from its test rows.
The table goes into docs/privacy.md (its section) and is printed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import examples, minimization, quality
from bench.run import (
    _output_uri,
    command_line,
    fresh_work_dir,
    machine,
    publish_section,
    run_arguments,
    run_config,
    run_pipeline,
)
from pipeline import node_ids, splits
from settings.configs import REPO_ROOT

DEFAULT_OUTPUT = REPO_ROOT / "docs" / "privacy.md"
DEFAULT_EPSILONS = (8.0, 4.0, 2.0, 1.0)
# Larger batches, a larger step, fewer steps: the noise is averaged over more
# examples per step (docs/privacy.md, measured on the eval split).
DP_RECIPE = {"batch_size": 256, "learning_rate": 0.01, "train_steps": 500}


def membership_attack(
    members: tuple[np.ndarray, np.ndarray], non_members: tuple[np.ndarray, np.ndarray]
) -> dict:
    """TF Privacy's membership-inference attacks on (probabilities, labels) of
    rows trained on and rows never seen; the strongest attack's AUC (0.5: the
    attacker cannot tell them apart) and advantage (max TPR - FPR)."""
    sys.skip_tf_privacy_import = True  # type: ignore[attr-defined]
    from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import (
        data_structures as mia_data,
    )
    from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import (
        membership_inference_attack as mia,
    )

    def logits(p: np.ndarray) -> np.ndarray:
        # Two-class logits whose softmax is (1 - p, p). Logits, not
        # probabilities: 0.8.12's entropy attack reads only logits.
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return np.column_stack([np.zeros(len(p)), np.log(p / (1 - p))])

    results = mia.run_attacks(
        mia_data.AttackInputData(
            logits_train=logits(members[0]),
            logits_test=logits(non_members[0]),
            labels_train=members[1].astype(int),
            labels_test=non_members[1].astype(int),
        ),
        mia_data.SlicingSpec(entire_dataset=True),
        attack_types=(
            mia_data.AttackType.THRESHOLD_ATTACK,
            mia_data.AttackType.THRESHOLD_ENTROPY_ATTACK,
            mia_data.AttackType.LOGISTIC_REGRESSION,
        ),
    )
    best = results.get_result_with_max_auc()
    return {
        "attack_auc": float(best.get_auc()),
        "attack_advantage": float(
            results.get_result_with_max_attacker_advantage().get_attacker_advantage()
        ),
        "attack": str(best.attack_type),
    }


def _train_rows(run) -> int:
    """Training rows of the run's window: every transformed train split the
    Trainer reads (Transform writes one artifact per span in the window)."""
    from models import private_training

    return private_training.count_rows(
        [
            os.path.join(artifact.uri, "Split-train", "*")
            for artifact in run.nodes[node_ids.TRANSFORM].outputs["transformed_examples"]
        ]
    )


def _score(label: str, result: dict, test, members, majority: np.ndarray) -> dict:
    """One table row: the run's model on the test rows and under attack."""
    from models import model as pipeline_model

    run, config = result["run"], result["config"]
    model_dir = os.path.join(_output_uri(run, node_ids.TRAINER, "model"), "Format-Serving")
    model_run = Path(_output_uri(run, node_ids.TRAINER, "model_run"))
    fit = json.loads((model_run / pipeline_model.FIT_TIME_FILE).read_text())["fit_seconds"]
    import tensorflow as tf

    loaded = tf.saved_model.load(model_dir)
    p_test = quality.pipeline_probabilities(loaded, test[2])
    interval, over_majority = quality.auc_interval(test[1], p_test, majority)
    return {
        "model": label,
        "epsilon": run.privacy["epsilon"] if run.privacy else None,
        "noise": run.privacy["noise_multiplier"] if run.privacy else None,
        "training": (
            f"{config.train_steps:,} x {config.batch_size}, lr {config.learning_rate:g}"
            + (f", clip {config.dp_l2_norm_clip:g}" if config.private_training else "")
        ),
        **quality.metrics(test[1], p_test),
        "auc_interval": interval,
        "majority_log_loss": quality.metrics(test[1], majority)["log_loss"],
        "fit_seconds": fit,
        **membership_attack(
            (quality.pipeline_probabilities(loaded, members[2]), members[1]), (p_test, test[1])
        ),
    }


def _number(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(results: dict) -> str:
    lines = [
        "## Utility against privacy, and leakage",
        "",
        f"`{results['command']}` on {results['date']}: {results['machine']}.",
        "",
        f"Trained on the window of a fresh store: the newest span ({results['data_rows']}: "
        f"{results['train_rows']:,} training rows; delta {results['delta']:g}, one microbatch "
        "per example; steps x batch, learning rate and clipping norm in each row), each "
        "model scored on the newest span's test split "
        f"({results['test_rows']:,} rows, never trained on). Attack: TF Privacy's "
        "membership inference (threshold on loss, threshold on entropy, logistic "
        f"regression; the strongest shown) on {results['member_rows']:,} rows of the newest "
        "span's train split against its test rows (0.5: members cannot be told apart).",
        "",
        "| model | training | epsilon | noise multiplier | AUC [95%] | log loss | beats the "
        "majority class? | training (s) | attacker AUC | attacker advantage |",
        "| --- | --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for row in results["rows"]:
        low, high = row["auc_interval"]
        if low <= 0.5:
            beats = "no (AUC interval reaches 0.5)"
        elif row["log_loss"] >= row["majority_log_loss"]:
            beats = "ranks better, worse log loss"
        else:
            beats = "yes"
        lines.append(
            f"| {row['model']} | {row['training']} | {_number(row['epsilon'])} | {_number(row['noise'], 3)} | "
            f"{row['auc']:.3f} [{low:.3f}, {high:.3f}] | {row['log_loss']:.4f} | {beats} | "
            f"{row['fit_seconds']:.0f} | {row['attack_auc']:.3f} | "
            f"{row['attack_advantage']:.3f} |"
        )
    lines += [
        "",
        f"Majority class (the train base rate for every row): AUC 0.5, log loss "
        f"{results['rows'][0]['majority_log_loss']:.4f}. Logistic regression, one-hot, fit on "
        f"the newest span's train split: AUC {results['logistic_auc']:.3f} on the same rows. "
        "Epsilon is the recorded one (the Trainer's accounting, RDP, Poisson sampling "
        "assumed: docs/privacy.md). Intervals: "
        f"{quality.BOOTSTRAP_RESAMPLES} bootstrap resamples of the test rows.",
        "",
        "### Data minimization: ZIP code and state, at which precision",
        "",
        results["minimization"],
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from settings.configs import PipelineConfig

    defaults = PipelineConfig()
    parser = run_arguments("bench.privacy", __doc__, REPO_ROOT / "build" / "bench-privacy")
    parser.set_defaults(output=DEFAULT_OUTPUT)
    parser.add_argument(
        "--epsilons",
        type=float,
        nargs="+",
        default=list(DEFAULT_EPSILONS),
        help="target epsilons, one private run each with the DP settings below "
        "(default: %(default)s)",
    )
    # The DP recipe (docs/privacy.md: chosen on the eval split, not the test rows).
    parser.add_argument("--dp-batch-size", type=int, default=DP_RECIPE["batch_size"])
    parser.add_argument("--dp-learning-rate", type=float, default=DP_RECIPE["learning_rate"])
    parser.add_argument("--dp-train-steps", type=int, default=DP_RECIPE["train_steps"])
    parser.add_argument("--dp-l2-norm-clip", type=float, default=defaults.dp_l2_norm_clip)
    parser.add_argument(
        "--naive-epsilon",
        type=float,
        default=4.0,
        help="one more private run at this epsilon with the non-private training settings "
        "and clipping norm 1, what DP-SGD gives untuned (0: none; default: %(default)s)",
    )
    args = parser.parse_args(argv)

    from models import private_training

    logs, spans, _ = fresh_work_dir(args)
    root = args.work_dir / "store"

    runs = [("no differential privacy", run_pipeline(run_config(root, spans, args), "no-dp", logs))]
    train_rows = _train_rows(runs[0][1]["run"])

    def private_run(label: str, name: str, epsilon: float, **settings) -> None:
        steps = settings.get("train_steps", args.train_steps)
        batch = settings.get("batch_size", defaults.batch_size)
        noise = private_training.noise_multiplier_for(
            epsilon, steps, batch, train_rows, defaults.dp_delta
        )
        config = run_config(
            root,
            spans,
            args,
            private_training=True,
            dp_noise_multiplier=round(noise, 4),
            **settings,
        )
        runs.append((label, run_pipeline(config, name, logs)))

    if args.naive_epsilon:
        private_run(
            f"DP-SGD untuned, target epsilon {args.naive_epsilon:g}",
            "dp-naive",
            args.naive_epsilon,
            dp_l2_norm_clip=1.0,
        )
    for target in args.epsilons:
        private_run(
            f"DP-SGD recipe, target epsilon {target:g}",
            f"dp-{target:g}",
            target,
            batch_size=args.dp_batch_size,
            learning_rate=args.dp_learning_rate,
            train_steps=args.dp_train_steps,
            dp_l2_norm_clip=args.dp_l2_norm_clip,
        )

    newest = _output_uri(runs[0][1]["run"], node_ids.EXAMPLE_GEN, "examples")
    train, test = (examples.read_split(newest, split) for split in (splits.TRAIN, splits.TEST))
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(train[1]), size=min(len(train[1]), len(test[1])), replace=False)
    members = (
        {k: v[chosen] for k, v in train[0].items()},
        train[1][chosen],
        [train[2][i] for i in chosen],
    )
    majority = np.full(len(test[1]), train[1].mean())
    print("[bench] scoring and attacking each model", flush=True)
    rows = [_score(label, result, test, members, majority) for label, result in runs]
    import tensorflow as tf

    run = runs[0][1]["run"]
    loaded = tf.saved_model.load(
        os.path.join(_output_uri(run, node_ids.TRAINER, "model"), "Format-Serving")
    )
    transform_dir = _output_uri(run, node_ids.TRANSFORM, "transform_graph")
    logistic = next(
        r
        for r in quality.quality(
            loaded,
            quality.featured(loaded, transform_dir, train),
            {"test": quality.featured(loaded, transform_dir, test)},
        )["test"]
        if r["model"].startswith("logistic")
    )
    minimized = minimization.measure(
        train,
        examples.read_split(newest, splits.VALIDATION),
        test,
        dataclasses.replace(defaults, train_steps=args.train_steps),
    )
    results = {
        "minimization": minimization.render(
            minimized, len(train[1]), len(test[1]), args.train_steps
        ),
        "command": command_line("bench.privacy", argv),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "data_rows": f"{args.rows:,} rows per span" if args.rows else "all rows",
        "train_rows": train_rows,
        "delta": defaults.dp_delta,
        "test_rows": len(test[1]),
        "member_rows": len(chosen),
        "rows": rows,
        "logistic_auc": logistic["auc"],
    }
    publish_section(render(results), args.output, "bench.privacy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
