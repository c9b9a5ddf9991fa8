"""The Beam runner end to end on a small real sample (one shared run), then a
cached re-run and a deliberately worse model against the same ML Metadata."""

import csv
import dataclasses
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from reporting import pages
from settings import metadata
from tests.conftest import (
    EXECUTING_COMPONENTS,
    another_run_starts,
    csv_text,
    real_export,
    run_beam_runner,
    tree_digest,
)

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _executions_by_node(config):
    store = metadata_store.MetadataStore(metadata.connection_config(config))
    by_node = {}
    for context in store.get_contexts_by_type("node"):
        node_id = context.name.split(".", 1)[1]
        by_node[node_id] = store.get_executions_by_context(context.id)
    return by_node


def test_help_lists_the_options():
    result = subprocess.run(
        [sys.executable, "runners/beam_runner.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in (
        "--data-root",
        "--pipeline-root",
        "--span",
        "--train-steps",
        "--beam-pipeline-args",
        "--mysql-host",
        "--verbose",
    ):
        assert flag in result.stdout


def test_progress_lines_and_summary(e2e):
    config, output = e2e
    for component in EXECUTING_COMPONENTS:
        assert f"  = {component} finished in" in output
    summary = output[output.index("Run summary") :]
    assert "16 components (16 ran, 0 cached)" in summary
    assert "rows        train " in summary and "eval " in summary and "test " in summary
    assert "anomalies   none" in summary
    assert "drift       not measured: no earlier span validated" in summary
    assert "anomalies   none" in summary
    assert "eval AUC    " in summary and "worst slice" in summary
    assert "blessed     yes: passed the AUC floor (no blessed baseline yet)" in summary
    assert f"pushed      {config.serving_model_dir}/{config.model_name}/" in summary
    assert f"MLMD        {config.metadata_path}" in summary


def test_mlmd_records_a_completed_execution_for_every_component(e2e):
    config, _ = e2e
    by_node = _executions_by_node(config)
    for component in EXECUTING_COMPONENTS:
        states = [e.last_known_state for e in by_node[component]]
        assert metadata_store_pb2.Execution.COMPLETE in states, component


@pytest.fixture(scope="module")
def own_store(e2e, tmp_path_factory):
    """The shared run's store and served models, copied: the re-runs below add
    runs and would otherwise change what other modules read from the shared
    store, whichever order (or worker) they run in. Spans and artifacts are
    read where the shared run left them."""
    source, _ = e2e
    root = tmp_path_factory.mktemp("beam_runner_store")
    shutil.copy(source.metadata_path, root / "metadata.sqlite")
    shutil.copytree(source.serving_model_dir, root / "serving_model")
    return dataclasses.replace(
        source,
        metadata_path=str(root / "metadata.sqlite"),
        serving_model_dir=str(root / "serving_model"),
        report_dir=str(root / "reports"),
    )


def test_rerun_without_change_is_served_from_cache(own_store):
    config = own_store
    pushed_before = tree_digest(Path(config.serving_model_dir))

    # First re-run: the statistics resolver now returns the first run's
    # validation, so the gate re-validates (cheap; Transform only waits for it
    # and stays cached). That validation is of this very span: the span is
    # not compared with its own statistics, drift stays unmeasured as in the
    # first run. The model is the one blessed in the first run, so it
    # is judged against that run's baseline again and the Evaluator's cache
    # answers (components/model_baseline.py). The Pusher runs: this copy's
    # serving folder is a new push destination (an execution property, part
    # of TFX's cache key), and it finds the model already there.
    code, output = run_beam_runner(config.as_flags())
    assert code == 0, output
    # ScoredComplaints too: it records the push it scored with, and the
    # Pusher's record of this destination is new (the scoring itself, the
    # ServedModelInferrer, is cached: the same model on the same complaints).
    for component in EXECUTING_COMPONENTS:
        if component not in ("DataValidationGate", "Pusher", "ScoredComplaints"):
            assert f"  = {component} cached in" in output, output
    assert "  = Pusher finished in" in output, output
    assert "drift       not measured: no earlier span" in output, output
    assert "pushed      nothing new: version " in output
    assert tree_digest(Path(config.serving_model_dir)) == pushed_before

    # From then on nothing changes: every component is served from cache.
    code, output = run_beam_runner(config.as_flags())
    assert code == 0, output
    for component in EXECUTING_COMPONENTS:
        assert f"  = {component} cached in" in output, output
    # Resolvers only query MLMD and always "run".
    assert re.search(r"16 components \([0-4] ran, (12|13|14|15|16) cached\)", output), output
    assert tree_digest(Path(config.serving_model_dir)) == pushed_before


def test_a_worse_model_is_not_blessed_and_the_served_model_stays(own_store):
    config = own_store
    serving = Path(config.serving_model_dir)
    pushed_before = tree_digest(serving)

    # Learning rate 0 leaves the seeded initial weights: a model that learned
    # nothing. The floor is lowered to 0 so only the no-regression check can
    # refuse it.
    code, output = run_beam_runner(config.as_flags() + ["--learning-rate=0", "--min-auc=0"])

    assert code == 0, output
    assert "  = Trainer finished in" in output
    assert "blessed     NO: auc change vs baseline = -" in output
    assert "fails no-regression bound" in output
    assert "pushed      nothing: the model was not blessed" in output
    assert tree_digest(serving) == pushed_before


def test_the_report_pages_of_cached_and_not_blessed_runs(own_store):
    """The re-runs above, read in Chromium as a user would: a cached re-run
    pushed nothing new and its index row says so; the not-blessed run says
    why and names the version still served."""
    from tests.browser import Browser

    folder = Path(own_store.report_dir) / own_store.pipeline_name
    browser = Browser()
    try:
        browser.open((folder / "index.html").as_uri())
        rows = browser.evaluate(
            "[...document.querySelectorAll('table.runs tr')].slice(1)"
            ".map(r => [...r.cells].map(c => c.textContent))"
        )
        by_status = {row[1]: row for row in rows}
        assert {"nothing new to push", "not blessed"} <= set(by_status), rows
        assert by_status["nothing new to push"][5] == "none", rows
        assert by_status["not blessed"][5] == "none", rows
        served = sorted(p.name for p in Path(own_store.model_dir).iterdir() if p.name.isdigit())
        for status, expected in (
            ("nothing new to push", f"Blessed; nothing new pushed: version {served[-1]} is this"),
            ("not blessed", "Not blessed, not pushed: auc change vs baseline"),
        ):
            run_id = by_status[status][0]
            browser.open((folder / pages.page_name(run_id)).as_uri())
            assert browser.requested_urls() == [(folder / pages.page_name(run_id)).as_uri()]
            verdict = browser.evaluate("document.getElementById('verdict').textContent")
            assert verdict.startswith(expected), verdict
            if status == "not blessed":
                assert f"version {served[-1]} in {own_store.model_dir} stays the served one" in (
                    verdict
                )
            else:  # the span read before: never drawn against itself
                assert (
                    browser.evaluate(
                        "document.querySelectorAll('rect.bar[data-series=baseline]').length"
                    )
                    == 0
                )
    finally:
        browser.close()


def test_unusable_raw_data_fails_before_the_pipeline_starts(tmp_path):
    (tmp_path / "raw").mkdir()
    code, output = run_beam_runner(
        [f"--raw-data-dir={tmp_path / 'raw'}", f"--data-root={tmp_path / 'spans'}"]
    )
    assert code == 1
    assert "Running pipeline" not in output


def _real_csv(rows: int = 300, explicit: bool = False) -> str:
    """The newest real rows of the 2015 export (`explicit`: only those labelled
    Yes or No, an export whose every outcome is final)."""
    header, body = real_export()
    label = header.index("Consumer disputed?")
    return csv_text(header, [r for r in body if r[label] or not explicit][:rows])


def _without_issue_column(text: str) -> str:
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    drop = header.index("Issue")
    return csv_text(header[:drop] + header[drop + 1 :], [r[:drop] + r[drop + 1 :] for r in rows])


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("utf16.csv", lambda: _real_csv().encode("utf-16"), "looks like UTF-16"),
        (
            "bytes.csv",
            lambda: _real_csv().encode().replace(b"Debt", b"D\x8fbt"),
            "neither UTF-8 nor Windows-1252/Latin-1",
        ),
        (
            "semicolons.csv",
            lambda: _real_csv().replace(",", ";").encode(),
            "separated by semicolons",
        ),
        (
            "no_issue.csv",
            lambda: _without_issue_column(_real_csv()).encode(),
            "no column maps to 'issue'",
        ),
        ("tiny.csv", lambda: _real_csv(rows=40, explicit=True).encode(), "too few rows for a span"),
        # Received within days of each other: no outcome final, nothing to train on.
        ("recent.csv", lambda: _real_csv().encode(), "has final outcomes to train on"),
        ("truncated.csv.gz", lambda: b"\x1f\x8b\x08\x00", "not a readable gzip file"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.endswith(("csv", "gz")) else "",
)
def test_a_bad_export_is_one_message_within_seconds(e2e, tmp_path, name, content, message):
    """Each expected failure: exit 1, one line naming the file and what to do,
    no traceback, TensorFlow never imported, the served model untouched."""
    config, _ = e2e
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / name).write_bytes(content())
    served = tree_digest(Path(config.serving_model_dir))
    probe = (
        "import runpy, sys; sys.argv = sys.argv[1:]; "
        "exit_code = 0\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as e:\n    exit_code = e.code\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
        "sys.exit(exit_code)"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            "runners/beam_runner.py",
            f"--raw-data-dir={raw}",
            f"--data-root={tmp_path / 'spans'}",
            f"--serving-model-dir={config.serving_model_dir}",
            f"--metadata-path={tmp_path / 'metadata.sqlite'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and name in line, line
    assert message in line
    assert "Traceback" not in result.stdout + result.stderr
    assert "Running pipeline" not in result.stdout
    assert tree_digest(Path(config.serving_model_dir)) == served


def test_the_runner_reports_its_own_run_while_another_run_writes(own_store, monkeypatch):
    """Runs on MySQL or a gRPC store are not locked against each other: the
    printed verdict and the report must be of this process's run, not of the
    newest run in the store."""
    from runners import beam_progress

    config = own_store
    other = "another-run-started-meanwhile"
    started: dict = {}
    finish_run = beam_progress.ProgressBeamDagRunner.run_with_ir

    def run_then_another_run_starts(self, pipeline, run_options=None):
        finish_run(self, pipeline, run_options)
        started["execution"] = another_run_starts(config, other)
        started["run_id"] = self.run_id

    monkeypatch.setattr(
        beam_progress.ProgressBeamDagRunner, "run_with_ir", run_then_another_run_starts
    )
    try:
        code, output = run_beam_runner(config.as_flags())
    finally:  # leave no RUNNING execution for the tests after this one
        if "execution" in started:
            store = metadata_store.MetadataStore(metadata.connection_config(config))
            (execution,) = store.get_executions_by_id([started["execution"]])
            execution.last_known_state = metadata_store_pb2.Execution.CANCELED
            store.put_executions([execution])
    assert code == 0, output
    assert started["run_id"] and started["run_id"] != other
    summary = output[output.index("Run summary") :]
    assert summary.startswith(f"Run summary: run {started['run_id']}, 16 components"), summary
    assert other not in output
    page = re.search(r"report +(\S+\.html)", summary).group(1)
    assert Path(page).name == pages.page_name(started["run_id"])


def test_a_model_compared_with_a_model_no_longer_served_is_not_pushed(e2e, tmp_path):
    """Two runs of the pipeline overlap (docs/concurrency.md). This run's model
    is blessed against the served version; while its Pusher waits for the
    serving folder's lock, another run pushes. It pushes nothing and says
    why; nothing is lost (the model and its blessing stay in the store)."""
    import time

    import tensorflow as tf

    from components import idempotent_pusher
    from reporting import run_history

    source, _ = e2e
    shutil.copy(source.metadata_path, tmp_path / "metadata.sqlite")
    shutil.copytree(source.serving_model_dir, tmp_path / "serving_model")
    config = dataclasses.replace(
        source,
        metadata_path=str(tmp_path / "metadata.sqlite"),
        serving_model_dir=str(tmp_path / "serving_model"),
        pipeline_root=str(tmp_path / "pipeline_root"),
        report_dir=str(tmp_path / "reports"),
        # A new model, blessed whatever it scores: only the push is in question.
        train_steps=source.train_steps + 1,
        min_auc=0.0,
        max_auc_regression=1.0,
    )
    base = Path(config.serving_model_dir) / config.model_name
    (served,) = base.iterdir()
    log = tmp_path / "run.log"
    with idempotent_pusher.push_lock(str(base)):
        with open(log, "w") as out:
            run = subprocess.Popen(
                [sys.executable, "runners/beam_runner.py", *config.as_flags()],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # TFX makes the Pusher's output folder when the node starts.
        started = time.monotonic()
        while not (Path(config.pipeline_root) / "Pusher").exists():
            assert run.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() - started < 900, log.read_text()[-3000:]
            time.sleep(0.5)
        # The other run's push: another SavedModel as the newest version.
        other = base / str(int(served.name) + 1)
        module = tf.Module()
        module.weight = tf.Variable(3.0)
        tf.saved_model.save(module, str(other))
    assert run.wait(timeout=600) == 0, log.read_text()[-3000:]
    output = log.read_text()

    refusal = re.search(
        rf"  pushed      nothing: version {other.name} of {re.escape(str(base))} was pushed "
        r"after this model was compared with the model at (\S+) \(another run",
        output,
    )
    assert refusal, output
    assert sorted(p.name for p in base.iterdir()) == sorted([served.name, other.name])
    # What the blessing names as its baseline is what was served when it was
    # compared (the check reads TFX's real layout, not an assumed one).
    baseline = Path(refusal.group(1)) / "Format-Serving" / "fingerprint.pb"
    assert baseline.read_bytes() == (served / "fingerprint.pb").read_bytes()
    *_, newest = run_history.history(metadata.connection_config(config), config.pipeline_name)
    assert newest.blessed and newest.pushed == "refused: another run pushed since the comparison"
