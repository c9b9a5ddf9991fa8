"""Runs the pipeline locally with TFX's BeamDagRunner.

    python runners/beam_runner.py --help
    python runners/beam_runner.py                         # bundled data, latest span
    python runners/beam_runner.py --span 20141113 --train-steps 500
    python runners/beam_runner.py \\
        --beam-pipeline-args='--direct_running_mode=multi_processing --direct_num_workers=2'
    source build/flink/env.sh && python runners/beam_runner.py   # Beam work on Flink

Prepares the bundled CFPB exports into spans, runs the graph from `pipeline/`
with caching, prints one line per component and ends with a run summary read
from ML Metadata. Orchestrator settings only: the graph lives in pipeline/.
One run at a time per SQLite store and pipeline root, and per pipeline on a
MySQL store (runners/run_lock.py): a second one is refused at once; a run
killed mid-component is tidied up by the next one, which reuses every
component that had finished.

Exit status: 0 finished, 1 the run (or the data) failed, 2 bad settings,
3 another run holds the store or the pipeline root.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence


def _quiet_logs(verbose: bool) -> None:
    """TF, Beam and TFX log thousands of lines per run; keep none of them.

    A failing component's message (and, unless it is an expected failure such
    as bad data, its traceback) is printed once on its progress line
    (runners/beam_progress.py); Beam and TFX would log it twice more. Called
    before TensorFlow is imported (TF_CPP_MIN_LOG_LEVEL is read then) and again
    after TFX is imported, because absl resets the levels on import.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore")
    for name in ("", "tensorflow", "apache_beam"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if "absl.logging" in sys.modules:
        sys.modules["absl.logging"].set_verbosity("fatal")


def main(argv: Sequence[str] | None = None) -> int:
    from settings import configs

    parser = argparse.ArgumentParser(
        prog="python runners/beam_runner.py",
        description="Run the CFPB dispute pipeline locally with TFX's BeamDagRunner.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 finished, 1 failed, 2 bad settings, 3 another run holds the "
        "store or pipeline root. Beam args take one quoted string with '=', e.g. "
        "--beam-pipeline-args='--direct_running_mode=multi_processing "
        "--direct_num_workers=2', or for Dataflow "
        "'--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp'.",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TFX/Beam/TensorFlow INFO logs instead of one line per component",
    )
    config, args = configs.parse_args(parser, argv)
    _quiet_logs(args.verbose)
    from runners import run_lock

    try:
        with run_lock.exclusive_run(config):
            return _run(config, args.verbose)
    except run_lock.RunLocked as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except run_lock.StoreUnreachable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _run(config, verbose: bool) -> int:
    """Prepares the data and runs the pipeline; the caller holds the run lock."""

    # Data first, before TensorFlow is imported (~20 s): a bad export is
    # reported within seconds.
    from data import prepare, storage
    from settings import beam
    from settings.configs import OUTPUT_LOCATIONS

    try:
        # Every location first, and the Beam engine: an unusable bucket or a
        # stopped cluster is one line naming its setting, not minutes of
        # retries inside the first component.
        storage.check_settings(config, prepare.PREPARE_LOCATIONS + OUTPUT_LOCATIONS)
        beam.check_reachable(beam.pipeline_args(config))
        print(f"Preparing spans from {config.raw_data_dir} into {config.data_root}")
        reports = prepare.prepare_configured(config, check=(), to_train=True)
    except (prepare.PreparationError, storage.StorageError, beam.EngineUnreachable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for report in reports:
        print(report.summary())

    from pipeline import pipeline
    from runners import beam_progress
    from settings import metadata

    _quiet_logs(verbose)

    connection = metadata.connection_config(config)
    cancelled = cancel_left_running(config, connection)
    if cancelled:
        print("Marked as canceled, left running by an interrupted run: " + ", ".join(cancelled))
    tfx_pipeline = pipeline.create_pipeline(config.graph(), connection)
    print(
        f"\nRunning pipeline '{config.pipeline_name}' "
        f"(cache {'on' if config.enable_cache else 'off'}, MLMD {metadata.describe(config)})"
    )
    started = time.monotonic()
    beam_progress.FAILED_NODES.clear()
    runner = beam_progress.ProgressBeamDagRunner()
    try:
        runner.run(tfx_pipeline)
    except Exception as error:
        took = time.monotonic() - started
        if beam_progress.FAILED_NODES:  # its line above holds the message, said once
            print(
                f"\nRun stopped after {took:.0f}s at "
                f"{', '.join(beam_progress.FAILED_NODES)} (message above)",
                file=sys.stderr,
            )
        else:
            print(f"\nRun failed after {took:.0f}s: {error}", file=sys.stderr)
        if runner.run_id is not None:  # it failed after starting a run: describe that run
            # Its leftovers first, so the summary says "canceled" for a node
            # that can no longer finish, not "running".
            _close_failed_run(connection, config.pipeline_name, runner.run_id)
            try:
                _report_run(config, connection, runner.run_id, sys.stderr)
            except Exception as unreadable:  # e.g. the store that failed the run is still down
                fault = beam_progress.machine_fault(unreadable) or unreadable
                print(f"The run's summary cannot be read now: {fault}", file=sys.stderr)
        return 1
    print(f"\nRun finished in {time.monotonic() - started:.0f}s")
    _report_run(config, connection, runner.run_id, sys.stdout)
    return 0


def cancel_left_running(config, connection) -> list[str]:
    """Cancels what killed runs and tasks left RUNNING where the lock this
    run holds proves them dead (runners/run_lock.py); the canceled nodes."""
    from runners import run_lock

    with run_lock.left_by_the_dead(config) as is_dead:
        return run_lock.cancel_in(
            connection, config.pipeline_name, is_dead, run_lock.KILLED_RUN_NOTE
        )


def _close_failed_run(connection, pipeline_name: str, run_id: str) -> None:
    """Cancels what the failed run left RUNNING: a node whose failure could
    not be recorded (ML Metadata out of reach at that moment). The next Beam
    run would tidy them too; this leaves the store right at once."""
    from ml_metadata import metadata_store

    from runners import run_lock

    try:
        cancelled = run_lock.cancel_interrupted(
            metadata_store.MetadataStore(connection),
            pipeline_name,
            lambda run, node: run == run_id,
            run_lock.FAILED_RUN_NOTE,
        )
    except Exception as unreachable:  # the store is still down: nothing can be recorded
        print(f"Left as they are in ML Metadata: {unreachable}", file=sys.stderr)
        return
    if cancelled:
        print("Marked as canceled: " + ", ".join(cancelled), file=sys.stderr)


def _report_run(config, connection, run_id: str | None, stream) -> None:
    """The summary and the HTML report of this run: the run this process
    made, even when other runs write to the same store."""
    from reporting import summary
    from runners import node_launcher

    if error := node_launcher.record_code_version(connection, run_id):
        print(f"  {error}", file=stream)
    print(summary.run_summary(config, connection, run_id=run_id).render(), file=stream)
    built = _write_report(config, connection, run_id, stream)
    if built is not None:
        from tracking import mlflow_mirror

        mlflow_mirror.mirror_after_run(config, connection, built, stream)


def _write_report(config, connection, run_id: str | None, stream):
    """The run's HTML report, and its page's location; a report that cannot
    be written never changes the run's outcome, it is only said (None)."""
    from reporting import report

    try:
        built = report.build(config, connection_config=connection, run_id=run_id)
        page = report.save(built)
    except Exception as error:  # the run's result stands; say why there is no page
        print(f"  report      not written: {type(error).__name__}: {error}", file=stream)
        return None
    print(f"  report      {page}", file=stream)
    return built, str(page)


if __name__ == "__main__":
    sys.exit(main())
