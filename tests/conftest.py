"""Shared fixtures. One small end-to-end pipeline run serves every test that
needs pipeline outputs, so the suite pays for Transform/Trainer/Evaluator once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from data import prepare
from settings.configs import REPO_ROOT, PipelineConfig

# The bundled exports' spans: the day of each export's newest complaint.
SPAN_2014, SPAN_2015 = 20141113, 20150319
# A few thousand real rows per span and few training steps: enough for the
# model to beat a coin flip, small enough for CI. With open complaints excluded
# (data/prepare.py) the easy signal is gone: on a 3,000-row slice logistic
# regression reaches 0.57-0.60 AUC, and 150 steps at the default learning rate
# 0.50; at 0.01 they reach 0.55. The tests' bar is "better than a coin flip".
E2E_LEARNING_RATE = 0.01
E2E_MIN_AUC = 0.5
E2E_ROWS_PER_SPAN = 3000
E2E_TRAIN_STEPS = 150
# Every component that runs an executor (the Resolvers only query MLMD).
EXECUTING_COMPONENTS = (
    "CsvExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "DataValidationGate",
    "Transform",
    "Trainer",
    "Evaluator",
    "Pusher",
    "ServedModelInferrer",
    "ScoredComplaints",
)


def pytest_configure(config):
    assert os.environ.get("TF_USE_LEGACY_KERAS") == "1", (
        "TF_USE_LEGACY_KERAS is not 1: run the tests with the venv that "
        "scripts/setup.sh creates (make test)"
    )
    # Every test sets its own settings. A developer's shell that sourced
    # build/services/env.sh or scripts/airflow_env.sh would otherwise send the
    # SQLite tests to their MySQL store and the Airflow tests to their Airflow.
    for name in [
        n for n in os.environ if n.startswith(("CFPB_", "AIRFLOW__")) or n == "AIRFLOW_HOME"
    ]:
        del os.environ[name]


# Work units for `pytest -n 2`: a module whole in one process (the hook is
# picked up from this module's namespace).
from tests.work_units import pytest_xdist_make_scheduler  # noqa: E402, F401


def real_export(name: str = "complaints_2015-01_2015-03.csv.gz") -> tuple:
    """Header and rows (lists of fields) of a bundled raw export, to cut new
    exports from real rows."""
    import csv

    path = prepare.RAW_DIR / name
    text, _ = prepare.decode(path.read_bytes(), path)
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    return header, rows


def export_received_through(day: str, path: Path) -> Path:
    """The bundled 2015 export's real rows received up to `day` (ISO), written
    to `path` by data/cut.py: an earlier download of the same complaints,
    whose recent outcomes were not final yet when it was taken."""
    from data import cut

    cut.received_through(prepare.RAW_DIR / "complaints_2015-01_2015-03.csv.gz", day, path)
    return path


def csv_text(header, rows) -> str:
    """A header and rows of fields as CSV text, as an export holds them."""
    import csv

    out = io.StringIO(newline="")
    csv.writer(out).writerows([header, *rows])
    return out.getvalue()


def write_csv(path: Path, header, rows, encoding: str = "utf-8") -> Path:
    """Writes a CSV export of `header` and `rows` (lists of fields) to `path`."""
    with open(path, "w", newline="", encoding=encoding) as f:
        f.write(csv_text(header, rows))
    return path


def small_config(root: Path, **overrides) -> PipelineConfig:
    """A config whose every path is under `root`, on a small slice of real data."""
    values = dict(
        data_root=str(root / "spans"),
        pipeline_root=str(root / "pipeline_root"),
        metadata_path=str(root / "metadata.sqlite"),
        serving_model_dir=str(root / "serving_model"),
        report_dir=str(root / "reports"),
        max_rows_per_span=E2E_ROWS_PER_SPAN,
        train_steps=E2E_TRAIN_STEPS,
        eval_steps=10,
        learning_rate=E2E_LEARNING_RATE,
        min_auc=E2E_MIN_AUC,
    )
    values.update(overrides)
    return PipelineConfig(**values)


def completed_component_types(config: PipelineConfig) -> set:
    """Component class names with a completed (or cached) execution in MLMD."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from settings import metadata

    store = metadata_store.MetadataStore(metadata.connection_config(config))
    return {
        store.get_execution_types_by_id([e.type_id])[0].name.rsplit(".", 1)[-1]
        for e in store.get_executions()
        if e.last_known_state
        in (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
    }


def pushed_model_dir(config: PipelineConfig) -> Path:
    """The newest version folder the Pusher wrote."""
    model_dir = Path(config.serving_model_dir) / config.model_name
    versions = sorted(model_dir.iterdir(), key=lambda p: int(p.name)) if model_dir.is_dir() else []
    assert versions, f"nothing was pushed to {model_dir}"
    return versions[-1]


def another_run_starts(config, run_id: str) -> int:
    """What another run of the pipeline writes first, as TFX's launcher does
    when it starts a node: a new `pipeline_run` context and an execution of
    the node, associated with its pipeline, run and node contexts. Returns
    the execution's id."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from settings import metadata

    store = metadata_store.MetadataStore(metadata.connection_config(config))
    trainer = store.get_context_by_type_and_name("node", f"{config.pipeline_name}.Trainer")
    pipeline = store.get_context_by_type_and_name("pipeline", config.pipeline_name)
    (newest,) = store.get_executions_by_id(
        [max(e.id for e in store.get_executions_by_context(trainer.id))]
    )
    run = metadata_store_pb2.Context(type_id=store.get_context_type("pipeline_run").id, name=run_id)
    execution = metadata_store_pb2.Execution(
        type_id=newest.type_id, last_known_state=metadata_store_pb2.Execution.RUNNING
    )
    execution_id, _, _ = store.put_execution(execution, [], [pipeline, run, trainer])
    return execution_id


def plant_running(store, pipeline_name: str, node_id: str, runs) -> dict[str, int]:
    """Leaves an execution of `node_id` RUNNING in ML Metadata for each of
    `runs` of `pipeline_name`, under the contexts TFX files it under (as a
    run killed in that node leaves it); {run id: execution id}."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    type_ids = {
        kind: store.put_context_type(pb.ContextType(name=kind))
        for kind in ("pipeline", "pipeline_run", "node")
    }
    execution_type = store.put_execution_type(pb.ExecutionType(name=node_id))

    def context(kind: str, name: str):
        found = store.get_context_by_type_and_name(kind, name)
        if found is not None:
            return found
        made = pb.Context(type_id=type_ids[kind], name=name)
        made.id = store.put_contexts([made])[0]
        return made

    shared = [context("pipeline", pipeline_name), context("node", f"{pipeline_name}.{node_id}")]
    return {
        run: store.put_execution(
            pb.Execution(type_id=execution_type, last_known_state=pb.Execution.RUNNING),
            [],
            [*shared, context("pipeline_run", run)],
        )[0]
        for run in runs
    }


def run_beam_runner(argv) -> tuple:
    """Runs `runners/beam_runner.py`'s main in-process; returns (exit code,
    stdout and stderr: progress, summary and errors)."""
    from runners import beam_runner

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = beam_runner.main(argv)
    return code, out.getvalue()


def tree_digest(root: Path) -> str:
    """One hash of every file name and byte under `root` (e.g. the serving directory)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def e2e(tmp_path_factory):
    """The Beam runner, run once on a small real sample: config, exit code, output."""
    config = small_config(tmp_path_factory.mktemp("e2e"))
    code, output = run_beam_runner(config.as_flags())
    print(output)
    assert code == 0, output
    return config, output


# A span newer than the bundled ones (CsvExampleGen reads the newest).
NEW_SPAN = 20160131


@pytest.fixture(scope="session")
def stopped_by_validation(e2e, tmp_path_factory):
    """A run the validation gate stops, shared by the gate's tests and the
    report's: a new span of 1,000 real rows of the e2e run's 2015 span where
    every other complaint has a product the curated schema does not know,
    run through the Beam runner against a copy of the e2e run's spans and
    pushed model. (config, exit code, output, digest of the serving folder
    before the run)."""
    import csv
    import shutil

    source, _ = e2e
    root = tmp_path_factory.mktemp("stopped_by_validation")
    shutil.copytree(source.data_root, root / "spans")
    shutil.copytree(source.serving_model_dir, root / "serving_model")
    with open(
        prepare.span_dir(root / "spans", SPAN_2015) / prepare.SPAN_FILE_NAME, newline=""
    ) as f:
        rows = list(csv.DictReader(f))[:1000]
    span_dir = prepare.span_dir(root / "spans", NEW_SPAN)
    span_dir.mkdir()
    with open(span_dir / prepare.SPAN_FILE_NAME, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(
            {**r, "product": "Crypto-asset services"} if i % 2 else r for i, r in enumerate(rows)
        )
    config = small_config(root)
    served_before = tree_digest(root / "serving_model")
    code, output = run_beam_runner(config.as_flags())
    return config, code, output, served_before


@pytest.fixture(scope="session")
def prepared_span(tmp_path_factory) -> Path:
    """The 2015 export prepared into the canonical CSV, small slice."""
    spans = tmp_path_factory.mktemp("spans")
    prepare.prepare_all(prepare.RAW_DIR, spans, max_rows=E2E_ROWS_PER_SPAN)
    return Path(prepare.span_dir(spans, SPAN_2015) / prepare.SPAN_FILE_NAME)


def sourced_env(script: str, env: dict) -> dict:
    """The environment after `source <script>` in bash (as the README's commands do)."""
    dumped = subprocess.run(
        [
            "bash",
            "-c",
            f'source "{script}" && python3 -c '
            '"import json, os; print(json.dumps(dict(os.environ)))"',
        ],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(dumped.stdout.strip().splitlines()[-1])


def mysql_settings(servers: dict, database: str) -> dict:
    """Config settings for ML Metadata on the `servers` MariaDB, in its own database."""
    return dict(
        mysql_host=servers["CFPB_MYSQL_HOST"],
        mysql_port=int(servers["CFPB_MYSQL_PORT"]),
        mysql_user=servers["CFPB_MYSQL_USER"],
        mysql_password_file=servers["CFPB_MYSQL_PASSWORD_FILE"],
        mysql_database=database,
    )


@pytest.fixture(scope="session")
def servers(request):
    """MariaDB and PostgreSQL on loopback (scripts/dev_services.sh), stopped when
    the session ends, also after a failure: the environment of their env.sh.

    Data goes under build/test-services, a fixed place where a killed
    session's servers are found and stopped by the next one. After a green
    session the data is deleted (in a clone under a private folder it lives
    in /var/lib and would outlive the clone); after a failure it is kept to
    look at.
    """
    script = str(REPO_ROOT / "scripts" / "dev_services.sh")
    data = REPO_ROOT / "build" / "test-services"
    env = {**os.environ, "CFPB_SERVICES_DIR": str(data)}
    subprocess.run([script, "destroy"], env=env, check=True)  # left by a killed session
    try:
        started = subprocess.run(
            [script, "start"], env=env, capture_output=True, text=True, timeout=900
        )
        assert started.returncode == 0, started.stdout + started.stderr
        yield sourced_env(str(data / "env.sh"), env)
    finally:
        ending = "stop" if request.session.testsfailed else "destroy"
        subprocess.run([script, ending], env=env, check=True)


# The feedback loop's logged traffic, shared by tests/serving and tests/data
# (a fixture is defined once, here, so the session makes it once).
from tests.feedback.traffic import feedback_traffic  # noqa: E402,F401
