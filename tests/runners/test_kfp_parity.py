"""The compiled Kubeflow YAML, run as open-source KFP runs it, decides what the
Beam runner decides on the same data.

One scenario for both runners: the 2014 export arrives (span 20141113); the
2015 export arrives (span 20150319: drift is measured against 2014's
statistics, the model trains on the window of both spans and is compared with
the first one); then a deliberately worse model (1 training step) on the same
window, which must be compared with the blessed one and never pushed. Each run's
decisions are read back from each runner's ML Metadata store with
reporting/run_history.py and must match row for row (the table is in the
docs/kubeflow.md).
"""

import dataclasses
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from data import prepare
from reporting import report, run_history
from runners import kubeflow_runner
from settings import metadata
from settings.configs import REPO_ROOT, PipelineConfig
from standins import kfp_backend, mlmd_grpc_server
from tests.conftest import SPAN_2014, SPAN_2015, small_config

WORSE_MODEL_STEPS = 1
# (exports present, training steps or None for the config's)
SCENARIO = ((1, None), (2, None), (2, WORSE_MODEL_STEPS))


def run_scenario(
    root: Path, run_once: Callable[[PipelineConfig, Path, int], None], **overrides
) -> PipelineConfig:
    """Runs SCENARIO with `run_once(config, raw_dir, train_steps)`; the exports
    arrive in a raw folder one by one, as they would from a download job.
    Returns the config the runs used."""
    raw = root / "raw"
    raw.mkdir()
    config = small_config(root, raw_data_dir=str(raw), **overrides)
    exports = prepare.raw_exports(prepare.RAW_DIR)
    for present, steps in SCENARIO:
        for export in exports[:present]:
            if not (raw / export.name).exists():
                (raw / export.name).symlink_to(export)
        run_once(config, raw, steps or config.train_steps)
    return config


def _beam_once(config, raw, steps):
    """One run of the Beam runner as its own process (as a user runs it)."""
    result = subprocess.run(
        [
            sys.executable,
            "runners/beam_runner.py",
            *config.as_flags(),
            f"--raw-data-dir={raw}",
            f"--train-steps={steps}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _kfp_scenario(root: Path):
    with mlmd_grpc_server.sqlite_standin(str(root / "cluster-metadata.sqlite")) as service:
        compiled = {}

        def kfp_once(config, raw, steps):
            if not compiled:  # compiled once, before any data: the span is chosen per run
                compiled["path"] = kubeflow_runner.compile_pipeline(config)
            # The cluster's ingestion job lays exports out as spans.
            prepare.prepare_all(raw, Path(config.data_root), config.max_rows_per_span)
            result = kfp_backend.run(
                compiled["path"],
                root / "kfp_root",
                service.address,
                {"train_args": json.dumps({"num_steps": steps})},
            )
            assert result.failed is None, result.tasks[result.failed].log.read_text()[-3000:]
            assert result.skipped_hooks == []

        config = run_scenario(
            root,
            kfp_once,
            kubeflow_metadata_grpc=service.address,
            kubeflow_output=str(root / "oss.yaml"),
        )
        # The run report reads a cluster's records too (the last run: the worse model).
        cluster = dataclasses.replace(config, metadata_grpc=service.address)
        page = report.write(cluster, root / "reports").read_text()
        assert "Not blessed, not pushed" in page and 'class="bar"' in page
        return run_history.history(metadata.grpc_connection(service.address), config.pipeline_name)


@pytest.fixture(scope="module")
def histories(tmp_path_factory):
    """(Beam runner's history, KFP stand-in's history). The two scenarios share
    nothing, so the Beam runs go on in their own processes during the replay."""
    beam: dict = {}

    def beam_scenario():
        try:
            config = run_scenario(tmp_path_factory.mktemp("parity_beam"), _beam_once)
            beam["history"] = run_history.history(
                metadata.connection_config(config), config.pipeline_name
            )
        except BaseException as error:  # re-raised in the test's thread
            beam["error"] = error

    thread = threading.Thread(target=beam_scenario)
    thread.start()
    try:
        kfp = _kfp_scenario(tmp_path_factory.mktemp("parity_kfp"))
    finally:
        thread.join()
    if "error" in beam:
        raise beam["error"]
    return beam["history"], kfp


@pytest.mark.e2e
def test_kfp_replay_decides_what_the_beam_runner_decides(histories):
    beam_history, kfp_history = histories
    print("\nBeam runner:\n" + run_history.markdown(beam_history))
    print("\nKFP stand-in, compiled oss YAML:\n" + run_history.markdown(kfp_history))
    assert [r.decisions() for r in kfp_history] == [r.decisions() for r in beam_history]


@pytest.mark.e2e
def test_the_scenario_exercises_every_decision(histories):
    """The parity above would be empty if the scenario never used a baseline."""
    first, second, worse = histories[1]
    assert [first.span, second.span, worse.span] == [SPAN_2014, SPAN_2015, SPAN_2015]
    assert [first.window, second.window, worse.window] == [
        [SPAN_2014],
        [SPAN_2014, SPAN_2015],
        [SPAN_2014, SPAN_2015],
    ]
    assert first.drift_baseline == "nothing (first statistics)"
    assert second.drift_baseline == f"span {SPAN_2014} statistics (run 1)"
    assert first.baseline_model == "nothing (no blessed model yet)"
    assert first.blessed and first.pushed == "new version v1"
    assert second.baseline_model == "run 1's model"
    # Measured: on the window's eval rows the 150-step window model (AUC 0.549)
    # does not beat run 1's, so run 1's model stays the baseline of run 3.
    latest_blessed = "run 2's model" if second.blessed else "run 1's model"
    assert worse.baseline_model == latest_blessed
    assert worse.blessed is False and worse.pushed == "nothing"
