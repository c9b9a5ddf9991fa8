"""Benchmarks: pipeline cost, cache, serving speed and model quality.

    python -m bench.run                       # full 2015 export, 2000 steps (~15 min here)
    python -m bench.run --rows 2000 --train-steps 50 --skip-multiprocessing   # smoke

Runs the Beam runner as a user does (a subprocess per run, wall time
measured), reads per-component times from ML Metadata, then measures what
the issue asks (docs/benchmarks.md) and writes the table there (or --output)
and prints it. Timings are measurements, never assertions.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import quality, serving_speed
from data import prepare
from pipeline import node_ids, splits
from settings.configs import REPO_ROOT, PipelineConfig

DEFAULT_OUTPUT = REPO_ROOT / "docs" / "benchmarks.md"
# A bar a small run clears, so that it pushes: bench.load and bench.faults
# include the Pusher.
PUSHES_ON_A_SLICE = {"learning_rate": 0.01, "min_auc": 0.5}
MULTI_PROCESSING = "--direct_running_mode=multi_processing --direct_num_workers=2"


def run_config(root: Path, spans: Path, args, **overrides) -> PipelineConfig:
    """Every location under `root` (unless overridden), on the prepared `spans`."""
    values = dict(
        data_root=str(spans),
        pipeline_root=str(root / "pipeline_root"),
        metadata_path=str(root / "metadata.sqlite"),
        serving_model_dir=str(root / "serving_model"),
        report_dir=str(root / "reports"),
        max_rows_per_span=args.rows,
        train_steps=args.train_steps,
    )
    return PipelineConfig(**{**values, **overrides})


def run_pipeline(config: PipelineConfig, label: str, log_dir: Path) -> dict:
    """One Beam runner process; its wall time and what ML Metadata recorded."""
    from reporting import summary

    log = log_dir / f"{label}.log"
    print(f"[bench] {label}: python runners/beam_runner.py ... (log {log})", flush=True)
    started = time.monotonic()
    with open(log, "w") as out:
        code = subprocess.run(
            [sys.executable, str(REPO_ROOT / "runners" / "beam_runner.py"), *config.as_flags()],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        ).returncode
    wall = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"{label}: the pipeline failed (exit {code}); see {log}")
    run = summary.run_summary(config)
    return {
        "wall": wall,
        "nodes": {n.node_id: (n.seconds, n.state) for n in run.nodes.values()},
        "auc": run.auc_overall.value if run.auc_overall else None,
        "run": run,
        "config": config,
    }


def _output_uri(run, node_id: str, key: str) -> str:
    return run.nodes[node_id].artifact(key).uri


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = next(
        int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")
    )
    versions = ", ".join(
        f"{p} {importlib.metadata.version(p)}"
        for p in ("tfx", "tensorflow", "apache-beam", "tensorflow-transform")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_kib / 2**20:.0f} GiB RAM; "
        f"Python {platform.python_version()}; {versions}"
    )


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """The command that wrote a table, as a user would type it."""
    return " ".join([f"python -m {module}", *(argv if argv is not None else sys.argv[1:])])


def _section_marks(name: str) -> tuple[str, str]:
    return f"<!-- written by python -m {name} -->", f"<!-- end of python -m {name} -->"


def _sections(text: str) -> dict[str, str]:
    """The marked sections of a page (publish_section), by the module that wrote each."""
    found = {}
    for line in text.splitlines():
        if line.startswith("<!-- written by python -m "):
            name = line.removeprefix("<!-- written by python -m ").removesuffix(" -->")
            start, end = _section_marks(name)
            if end in text:
                found[name] = text[text.index(start) : text.index(end) + len(end)]
    return found


def publish(text: str, output: Path, tag: str) -> None:
    """Writes a benchmark's Markdown to `output` and prints it. Sections other
    benchmarks wrote into the same page (publish_section) are kept."""
    output.parent.mkdir(parents=True, exist_ok=True)
    kept = _sections(output.read_text()) if output.exists() else {}
    output.write_text(
        "\n\n".join([text.rstrip("\n"), *(kept[name] for name in sorted(kept))]) + "\n"
    )
    print(text)
    print(f"[{tag}] wrote {output}")


def publish_section(text: str, output: Path, name: str) -> None:
    """Writes `text` as the section of `output` that `python -m name` owns:
    replaced in place when the page has it, appended otherwise; the rest of
    the page is left as it is. Prints it."""
    start, end = _section_marks(name)
    block = f"{start}\n{text.rstrip()}\n{end}"
    page = output.read_text() if output.exists() else ""
    old = _sections(page).get(name)
    page = page.replace(old, block) if old else page.rstrip("\n") + "\n\n" + block + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page.lstrip("\n"))
    print(text)
    print(f"[{name}] wrote its section of {output}")


def _components_table(cold: dict, cached: dict, multi: dict | None) -> list[str]:
    lines = [
        "| component | cold (s) | cached re-run (s) |"
        + (" multi_processing, 2 workers (s) |" if multi else ""),
        "| --- | ---: | ---: |" + (" ---: |" if multi else ""),
    ]
    for node, (seconds, _) in cold["nodes"].items():
        cached_seconds, state = cached["nodes"].get(node, (0.0, "-"))
        row = f"| {node} | {seconds:.1f} | {cached_seconds:.1f} ({state}) |"
        if multi:
            row += f" {multi['nodes'].get(node, (0.0, '-'))[0]:.1f} |"
        lines.append(row)
    return lines


def _shown_path(path: str) -> str:
    """Relative to the repository when inside it: the table is committed."""
    return os.path.relpath(path, REPO_ROOT) if Path(path).is_relative_to(REPO_ROOT) else path


def render(results: dict) -> str:
    cold, reruns, multi = results["cold"], results["reruns"], results.get("multi")
    trained = results["fit"]
    fit = trained["fit_seconds"]
    bare = results["bare"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{results['command']}` on {results['date']}.",
        f"Machine: {results['machine']}.",
        f"Data: span {results['trained_span']} ({results['trained_source']}: the newest "
        f"export as downloaded on {results['cut_through']}, python -m data.cut), {results['rows']}; "
        f"at most {results['train_steps']} training steps, batch {trained['batch_size']}, "
        f"stopping early on the validation split (the cold run trained {trained['steps']} "
        f"steps and kept the weights of step {trained['kept_step']}; the bare script "
        f"{bare['steps']}, kept {bare['kept_step']}).",
        f"Labels: `Yes` is a dispute, `No` or empty is none, once the outcome is final: "
        f"complaints whose company response is still `In progress` "
        f"({results['excluded_open']:,} rows of this span) and those received within "
        f"{prepare.OUTCOME_FINAL_AFTER_DAYS} days of the export's newest complaint, whose "
        f"consumers may still dispute ({results['excluded_not_final']:,} rows, after "
        f"{results['final_through']}), are excluded (decision and evidence in data/README.md, "
        '"The prediction moment"). Every AUC below is on complaints with a final outcome.'
        + "".join(
            f" Span {span} ({source}) holds no final outcome, so it is no out-of-time test set."
            for span, source in results.get("no_outcomes", [])
        ),
        "",
        "## Pipeline cost and cache",
        "",
        "| run | wall (s) |",
        "| --- | ---: |",
        f"| cold (fresh pipeline root and ML Metadata) | {cold['wall']:.0f} |",
    ]
    for i, rerun in enumerate(reruns, 1):
        lines.append(f"| re-run {i}, nothing changed | {rerun['wall']:.0f} |")
    if multi:
        lines.append(f"| cold, Beam multi_processing with 2 workers | {multi['wall']:.0f} |")
    lines += [
        "",
        "Re-run 1 re-runs only the resolvers and the data validation gate (the drift "
        "resolver now returns the first run's statistics); the Evaluator's cache answers, "
        "because a model that already is the latest blessed one is judged against the "
        "baseline it was blessed against (components/model_baseline.py). From re-run 2 on "
        "every component is cached. A re-run's time is process start-up and imports "
        "(TensorFlow and TFX, ~25 s on 2 cores: `python -X importtime runners/beam_runner.py`).",
        "",
        *_components_table(cold, reruns[-1], multi),
        "",
        "## Overhead against a bare script",
        "",
        "| measure | seconds |",
        "| --- | ---: |",
        f"| Trainer's `model.fit` in the cold run | {fit:.0f} |",
        f"| pipeline overhead = cold wall - fit | {cold['wall'] - fit:.0f} |",
        f"| bare script: same Keras model, steps and train rows, no TFX (wall) | {bare['wall_seconds']:.0f} |",
        f"| bare script's `fit` | {bare['fit_seconds']:.0f} |",
        f"| ratio cold pipeline / bare script | {cold['wall'] / bare['wall_seconds']:.1f}x |",
        "",
        f"The bare script's test AUC: {bare['test_auc']:.3f} (the pipeline model's is in the "
        "quality table).",
        "",
        "## Serving: the pushed SavedModel in-process",
        "",
        "| case | batch | p50 (ms) | p99 (ms) | examples/s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in results["serving"]:
        lines.append(
            f"| {row['case']} | {row['batch_size']} | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {row['examples_per_s']:,.0f} |"
        )
    by_batch: dict[int, dict] = {}
    for row in results["serving"]:
        by_batch.setdefault(row["batch_size"], {})[row["case"]] = row
    lines += [
        "",
        "| batch | signature / model-only throughput | parse + Transform share of "
        "the signature's mean latency |",
        "| ---: | ---: | ---: |",
    ]
    for batch, cases in by_batch.items():
        signature = cases[serving_speed.SIGNATURE]
        lines.append(
            f"| {batch} | {signature['examples_per_s'] / cases[serving_speed.MODEL_ONLY]['examples_per_s']:.2f}x "
            f"| {cases[serving_speed.TRANSFORM_ONLY]['mean_ms'] / signature['mean_ms']:.0%} |"
        )
    lines += [
        "",
        "All three are concrete functions of the pushed SavedModel (as TF Serving calls a "
        "signature); the signature is parse + Transform + model, so its throughput over the "
        "model-only case is what serving raw complaints costs.",
        "",
        "## Model quality",
        "",
        "The cold run's trained model, "
        + (
            f"blessed and pushed ({_shown_path(results['pushed'])})."
            if results["pushed"]
            else "NOT blessed (not pushed)."
        ),
        "Every baseline is trained on the pipeline's train split (CsvExampleGen's hash split) "
        "with the pipeline model's own inputs (the model features its Transform graph "
        "computes, models/features.py: logistic regression one-hot, boosted trees with "
        f"each feature a category, or an ordinal number past {quality.MAX_TREE_CATEGORIES} "
        "indices) and scored on the same rows as the pipeline model: its held-out test "
        "split, and the outcomes that became final after the export the pipeline trained "
        f"on was downloaded ({results['later_rows']:,} complaints of the whole export whose "
        f"outcome was not final on {results['cut_through']}, never trained on). "
        "The pipeline model also reads the validation split, to stop early and to calibrate "
        "(Platt scaling); the baselines take their libraries' defaults and no validation rows.",
        "",
    ]
    for test_name, rows in results["quality"].items():
        lines += [
            f"### {test_name}",
            "",
            "| model | rows | AUC | AUC 95% interval | AUC - pipeline's, 95% interval "
            "| PR-AUC | log loss | calibration error |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in rows:
            low, high = row["auc_interval"]
            d_low, d_high = row["auc_minus_pipeline"]
            difference = "-" if row is rows[0] else f"{d_low:+.3f} .. {d_high:+.3f}"
            lines.append(
                f"| {row['model']} | {row['test_rows']:,} | {row['auc']:.3f} | "
                f"{low:.3f} .. {high:.3f} | {difference} | {row['pr_auc']:.3f} | "
                f"{row['log_loss']:.4f} | {row['calibration']['expected_calibration_error']:.3f} |"
            )
        lines += ["", *_calibration_table(rows[0]), ""]
    lines += [
        f"Intervals: {quality.BOOTSTRAP_RESAMPLES} bootstrap resamples of the test rows; "
        "the difference to the pipeline model is paired (same resampled rows), so an "
        "interval containing 0 means that test set cannot tell the two apart. "
        "Calibration error: the row-weighted mean gap between predicted probability and "
        f"observed rate over {quality.CALIBRATION_BINS} equal-count bins of the prediction.",
        "",
        *_attempts_table(results),
    ]
    return "\n".join(lines)


def _attempts_table(results: dict) -> list[str]:
    from bench import attempts

    lines = [
        "## Attempts: features against the baselines",
        "",
        attempts.__doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
        "",
        f"| features | test set | rows | Keras model AUC [95%] | {quality.LOGISTIC} "
        f"| {quality.BOOSTED} | Keras - better baseline, 95% interval |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["attempts"]:
        low, high = row["keras_interval"]
        d_low, d_high = row["keras_minus_best"]
        verdict = "better" if d_low > 0 else "worse" if d_high < 0 else "no difference"
        lines.append(
            f"| {row['features']} | {row['test_set'].split(':')[0]} | {row['rows']:,} | "
            f"{row['keras_auc']:.3f} [{low:.3f}, {high:.3f}] | "
            f"{row['baseline_aucs'][quality.LOGISTIC]:.3f} | "
            f"{row['baseline_aucs'][quality.BOOSTED]:.3f} | "
            f"{d_low:+.3f} .. {d_high:+.3f} ({verdict}) |"
        )
    return [*lines, ""]


def _calibration_table(row: dict) -> list[str]:
    """Whether the pipeline model's probabilities mean what they say: each
    bin's mean prediction against the observed rate and its 95% interval."""
    lines = [
        f"Calibration of the {row['model']}: test rows in "
        f"{quality.CALIBRATION_BINS} equal-count bins of its predicted probability.",
        "",
        "| bin | rows | mean predicted | observed | observed 95% interval | inside |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for number, b in enumerate(row["calibration"]["bins"], 1):
        low, high = b["interval"]
        inside = "yes" if low <= b["predicted"] <= high else "**no**"
        lines.append(
            f"| {number} | {b['rows']:,} | {b['predicted']:.3f} | {b['observed']:.3f} "
            f"| {low:.3f} .. {high:.3f} | {inside} |"
        )
    return lines


def run_arguments(module: str, description: str | None, work_dir: Path) -> argparse.ArgumentParser:
    """The parser of a benchmark that runs the pipeline: rows, steps, where it
    works and which page it writes (docs/benchmarks.md by default)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, help="rows per span (default: all)")
    parser.add_argument("--train-steps", type=int, default=PipelineConfig().train_steps)
    parser.add_argument("--work-dir", type=Path, default=work_dir)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    return parser


def fresh_work_dir(args) -> tuple[Path, Path, list]:
    """An emptied --work-dir with the bundled exports prepared as spans
    (--rows each; outside every timing): (logs folder, spans folder, the
    preparation reports, oldest span first)."""
    if args.work_dir.exists():
        shutil.rmtree(args.work_dir)
    logs = args.work_dir / "logs"
    logs.mkdir(parents=True)
    spans = args.work_dir / "spans"
    return logs, spans, prepare.prepare_all(prepare.RAW_DIR, spans, args.rows)


def month_before(day: str) -> str:
    """The last day (ISO) of the month before `day`'s."""
    return (
        datetime.date.fromisoformat(day).replace(day=1) - datetime.timedelta(days=1)
    ).isoformat()


@dataclasses.dataclass
class LaterOutcomes:
    """The bench's data: the newest export as downloaded at the end of the
    month before its last (`through`; data/cut.py) is what the pipeline
    trains on; the outcomes that became final between that download and the
    whole export (a span prepared from both, deduplicated by complaint id)
    are a test set the model never saw."""

    raw: Path  # the exports the pipeline reads: older ones and the cut
    spans: Path
    reports: list
    through: str
    later_spans: Path
    later: prepare.SpanReport  # the whole export's


def later_outcomes(args, reports: list) -> LaterOutcomes:
    """Prepares the bench's training spans (older exports + the cut) and the
    later outcomes, under --work-dir; `reports`: the bundled exports'."""
    from data import cut

    newest = reports[-1]
    through = month_before(newest.last_date)
    exports = {Path(str(p)).name: Path(str(p)) for p in prepare.raw_exports(prepare.RAW_DIR)}
    # Two folders: the runner prepares every export of its raw folder into
    # its spans, so the whole export must never be where the pipeline reads.
    raw, raw_later = args.work_dir / "raw", args.work_dir / "raw_later"
    raw.mkdir()
    raw_later.mkdir()
    source = exports[newest.source]
    cut_name = f"{source.name.split('.')[0]}_through_{through}.csv"
    cut.received_through(source, through, raw / cut_name)
    for folder in (raw, raw_later):
        for report in reports[:-1]:
            (folder / report.source).symlink_to(exports[report.source].resolve())
    (raw_later / cut_name).symlink_to((raw / cut_name).resolve())
    (raw_later / source.name).symlink_to(source.resolve())
    spans = args.work_dir / "spans_cut"
    training = prepare.prepare_all(raw, spans, args.rows)
    later_spans = args.work_dir / "spans_later"
    # Every row of both (not --rows): the cut's final outcomes, all of them,
    # are what the whole export's span leaves out.
    (later,) = [r for r in prepare.prepare_all(raw_later, later_spans) if r.span == newest.span]
    return LaterOutcomes(raw, spans, training, through, later_spans, later)


def main(argv: Sequence[str] | None = None) -> int:
    parser = run_arguments("bench.run", __doc__, REPO_ROOT / "build" / "bench")
    parser.add_argument(
        "--skip-multiprocessing",
        action="store_true",
        help="leave out the multi_processing cold run (the slowest part)",
    )
    parser.add_argument(
        "--serving-seconds",
        type=float,
        default=10.0,
        help="measuring time per serving case (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    logs, _, bundled = fresh_work_dir(args)
    data = later_outcomes(args, bundled)
    spans, reports = data.spans, data.reports
    # The pipeline trains on the latest span with final outcomes (the cut);
    # older ones with final outcomes are out-of-time test sets too. A span
    # for scoring only has no outcome to test on.
    trainable = [r for r in reports if r.rows_written]
    trained, older = trainable[-1], trainable[:-1]
    no_outcomes = [r for r in reports if not r.rows_written]

    raw = {"raw_data_dir": str(data.raw)}
    cold = run_pipeline(run_config(args.work_dir / "in_memory", spans, args, **raw), "cold", logs)
    if data.later.span in prepare.span_dirs(spans):
        raise RuntimeError(
            f"the pipeline prepared span {data.later.span} (the later outcomes) into {spans}: "
            "it would test on rows it trained on"
        )
    reruns = [
        run_pipeline(
            run_config(args.work_dir / "in_memory", spans, args, **raw), f"rerun-{i}", logs
        )
        for i in (1, 2)
    ]
    multi = None
    if not args.skip_multiprocessing:
        multi = run_pipeline(
            run_config(
                args.work_dir / "multi_processing",
                spans,
                args,
                beam_pipeline_args=MULTI_PROCESSING.split(),
                **raw,
            ),
            "cold-multi-processing",
            logs,
        )

    run = cold["run"]
    examples_uri = _output_uri(run, node_ids.EXAMPLE_GEN, "examples")
    # The model the cold run trained (also what it pushed, if it was blessed).
    model_dir = os.path.join(_output_uri(run, node_ids.TRAINER, "model"), "Format-Serving")
    model_run = _output_uri(run, node_ids.TRAINER, "model_run")
    from models import model as pipeline_model

    fit = json.loads((Path(model_run) / pipeline_model.FIT_TIME_FILE).read_text())

    print("[bench] bare Keras script", flush=True)
    bare_run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bare_keras",
            "--examples",
            examples_uri,
            "--steps",
            str(args.train_steps),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    if bare_run.returncode != 0:
        raise RuntimeError(f"bare script failed:\n{bare_run.stderr[-3000:]}")
    bare = json.loads(bare_run.stdout.strip().splitlines()[-1])

    from bench import examples

    train, test = (
        examples.read_split(examples_uri, split) for split in (splits.TRAIN, splits.TEST)
    )
    test_sets = {f"test split of span {trained.span} ({Path(trained.source).name})": test}
    print(f"[bench] CsvExampleGen on the later outcomes (span {data.later.span})", flush=True)
    test_sets[
        f"outcomes final after {data.through}: span {data.later.span} "
        f"({Path(data.later.source).name}) less the cut's complaints, out of time"
    ] = examples.span_examples(
        dataclasses.replace(cold["config"], data_root=str(data.later_spans)),
        data.later.span,
        args.work_dir / "later-outcomes",
    )
    for report in older:
        print(f"[bench] CsvExampleGen on span {report.span} (out-of-time test set)", flush=True)
        test_sets[f"all of span {report.span} ({Path(report.source).name}), out of time"] = (
            examples.span_examples(
                cold["config"], report.span, args.work_dir / f"span-{report.span}"
            )
        )
    transform_dir = _output_uri(run, node_ids.TRANSFORM, "transform_graph")
    print("[bench] serving speed", flush=True)
    serving = serving_speed.serving_speed(model_dir, transform_dir, test[2], args.serving_seconds)
    print("[bench] model quality", flush=True)
    import tensorflow as tf

    from bench import attempts

    loaded = tf.saved_model.load(model_dir)
    config = cold["config"]
    train_featured = quality.featured(loaded, transform_dir, train)
    tests_featured = {
        name: quality.featured(loaded, transform_dir, split) for name, split in test_sets.items()
    }
    validation = quality.featured(
        loaded, transform_dir, examples.read_split(examples_uri, splits.VALIDATION)
    )
    tried = attempts.attempts(train_featured, validation, tests_featured, config)
    results = {
        "command": command_line("bench.run", argv),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "rows": f"{args.rows:,} rows" if args.rows else "all rows",
        "train_steps": args.train_steps,
        "trained_span": trained.span,
        "trained_source": Path(trained.source).name,
        "excluded_open": trained.excluded.get(prepare.UNKNOWN_OUTCOME, 0),
        "excluded_not_final": trained.excluded.get(prepare.NOT_FINAL_OUTCOME, 0),
        "final_through": trained.outcome_final_through,
        "no_outcomes": [(r.span, Path(r.source).name) for r in no_outcomes],
        "cold": cold,
        "reruns": reruns,
        "multi": multi,
        "fit": fit,
        "bare": bare,
        "serving": serving,
        "quality": quality.quality(loaded, train_featured, tests_featured),
        "attempts": tried,
        "cut_through": data.through,
        "later_rows": data.later.rows_written,
        "pushed": run.pushed_path,
    }
    publish(render(results), args.output, "bench")
    return 0


if __name__ == "__main__":
    sys.exit(main())
