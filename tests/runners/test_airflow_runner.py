"""The Airflow DAG under real Airflow 2.11 (temporary AIRFLOW_HOME, SQLite):
compile, parse (no TFX, no data touched, stale compilations refused), graph,
CLI listing, and a full `airflow dags test` run on a small sample."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from pipeline import node_ids, pipeline
from runners import airflow_runner
from settings import code_version, metadata
from tests.conftest import (
    EXECUTING_COMPONENTS,
    completed_component_types,
    run_beam_runner,
    small_config,
    sourced_env,
)

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
AIRFLOW = "airflow"  # from the venv, put first on PATH by scripts/airflow_env.sh


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    """(config, env, run) for an Airflow home whose DAGs folder is runners/."""
    home = tmp_path_factory.mktemp("airflow_home")
    config = small_config(home / "pipeline")
    # The environment the README's commands use: scripts/airflow_env.sh.
    env = sourced_env("scripts/airflow_env.sh", {**os.environ, "AIRFLOW_HOME": str(home)})
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "runners")
    env.update(config.as_env(), CFPB_AIRFLOW_COMPILED=str(home / "compiled.json"))

    def run(*args, timeout=600, **env_changes):
        result = subprocess.run(
            args,
            env={**env, **env_changes},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"{args}\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
        return result.stdout

    def start(*args, output: Path):
        """Starts a command in the background, its output to a file (a pipe
        nobody reads while the test waits would fill and block it)."""
        with open(output, "w") as out:
            return subprocess.Popen(args, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

    run.start = start
    run(AIRFLOW, "db", "migrate")
    run(sys.executable, "runners/airflow_runner.py")  # the README's compile step
    return config, run


_PARSE = """
import json, sys
from pathlib import Path
from airflow.models import DagBag
bag = DagBag(include_examples=False)
dag = bag.get_dag("cfpb-disputes")
print(json.dumps({
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
    "heavy_imports": sorted(m for m in ("tensorflow", "tfx", "apache_beam") if m in sys.modules),
    "data_root_exists": Path(sys.argv[1]).exists(),
}))
"""


def _expected_tasks(config) -> set:
    return set(pipeline.component_ids(pipeline.create_pipeline(config))) | {
        airflow_runner.PREPARE_TASK_ID
    }


def test_parsing_the_dag_imports_no_tfx_and_touches_no_data(airflow, tmp_path):
    _, run = airflow
    # A pipeline compiled for a data root nothing has prepared yet.
    untouched = {
        "CFPB_DATA_ROOT": str(tmp_path / "spans"),
        "CFPB_AIRFLOW_COMPILED": str(tmp_path / "compiled.json"),
    }
    run(sys.executable, "runners/airflow_runner.py", **untouched)
    parsed = json.loads(
        run(sys.executable, "-c", _PARSE, untouched["CFPB_DATA_ROOT"], **untouched)
        .strip()
        .splitlines()[-1]
    )
    assert parsed["import_errors"] == {}
    assert parsed["dag_ids"] == ["cfpb-disputes"]
    assert parsed["heavy_imports"] == []
    assert parsed["data_root_exists"] is False  # spans are prepared by a task, not by parsing


def test_a_dag_compiled_from_other_settings_is_refused_with_the_command_to_fix_it(airflow):
    config, run = airflow
    parsed = json.loads(
        run(
            sys.executable,
            "-c",
            _PARSE,
            config.data_root,
            CFPB_TRAIN_STEPS=str(config.train_steps + 1),
        )
        .strip()
        .splitlines()[-1]
    )
    (error,) = parsed["import_errors"].values()
    assert "compiled from other settings" in error
    assert "python runners/airflow_runner.py" in error
    assert parsed["dag_ids"] == []


def test_dag_imports_and_matches_the_pipeline_graph(airflow):
    config, run = airflow
    listing = run(
        sys.executable,
        "-c",
        """
import json
from airflow.models import DagBag
bag = DagBag(include_examples=False)
dag = bag.get_dag("cfpb-disputes")
print(json.dumps({
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
    "catchup": dag.catchup,
    "tags": sorted(dag.tags),
    "edges": sorted([t.task_id, d] for t in dag.tasks for d in t.downstream_task_ids),
    "tasks": sorted(t.task_id for t in dag.tasks),
}))
""",
    )
    dag = json.loads(listing.strip().splitlines()[-1])
    expected = pipeline.create_pipeline(config)

    assert dag["import_errors"] == {}
    assert dag["dag_ids"] == ["cfpb-disputes"]
    assert dag["catchup"] is False
    assert dag["tags"] == ["cfpb", "tfx"]
    assert set(dag["tasks"]) == _expected_tasks(config)
    # The TFX graph's edges, and the ExampleGens wait for the spans to be prepared.
    assert {tuple(edge) for edge in dag["edges"]} == pipeline.component_edges(expected) | {
        (airflow_runner.PREPARE_TASK_ID, "CsvExampleGen"),
        (airflow_runner.PREPARE_TASK_ID, node_ids.OPEN_EXAMPLE_GEN),
    }


def test_with_a_tracking_uri_the_run_ends_with_a_mirror_task_whatever_happened(airflow):
    config, run = airflow
    listing = run(
        sys.executable,
        "-c",
        """
import json
from airflow.models import DagBag
dag = DagBag(include_examples=False).get_dag("cfpb-disputes")
mirror = dag.get_task("mirror_to_mlflow")
print(json.dumps({
    "upstream": sorted(mirror.upstream_task_ids),
    "trigger_rule": str(mirror.trigger_rule),
    "callable": mirror.python_callable.__qualname__,
}))
""",
        CFPB_MLFLOW_TRACKING_URI="http://127.0.0.1:9",
    )
    mirror = json.loads(listing.strip().splitlines()[-1])
    # After every node (a failed preparation leaves them upstream_failed: done).
    assert set(mirror["upstream"]) == _expected_tasks(config) - {airflow_runner.PREPARE_TASK_ID}
    assert mirror["trigger_rule"] == "all_done"
    assert mirror["callable"] == airflow_runner.mirror_to_mlflow.__qualname__


def test_airflow_cli_lists_the_dag_and_its_tasks(airflow):
    _, run = airflow
    assert "cfpb-disputes" in run(AIRFLOW, "dags", "list")
    tasks = run(AIRFLOW, "tasks", "list", "cfpb-disputes").split()
    assert {"CsvExampleGen", "Trainer", "Pusher"} <= set(tasks)


def test_airflow_dags_test_runs_the_whole_pipeline(airflow, tmp_path):
    """...while a Beam run on the same SQLite store is refused: a task holds
    the store (shared) while it runs, and the Beam run would otherwise take
    the task's RUNNING execution for an interrupted one and cancel it."""
    config, run = airflow
    started = time.monotonic()
    log = tmp_path / "dags-test.log"
    dag_run = run.start(AIRFLOW, "dags", "test", "cfpb-disputes", output=log)
    # TFX makes a node's output folders when its execution starts (the
    # filesystem, not the store: a reader could make a task's write wait).
    while not (Path(config.pipeline_root) / node_ids.TRANSFORM).exists():
        assert dag_run.poll() is None, log.read_text()[-5000:]
        assert time.monotonic() - started < 900, "Transform never started"
        time.sleep(0.5)
    code, output = run_beam_runner(config.as_flags())
    assert code == 3, output
    assert "Airflow tasks of this store are running" in output, output
    assert dag_run.wait(timeout=1800) == 0, log.read_text()[-5000:]
    print(f"airflow dags test took {time.monotonic() - started:.0f}s")

    # `dags test` records its run in Airflow's DB but does not register the DAG
    # in the `dag` table, which `airflow dags list-runs` requires.
    recorded = json.loads(
        run(
            sys.executable,
            "-c",
            """
import json
from airflow.models import DagRun
(dag_run,) = DagRun.find(dag_id="cfpb-disputes")
print(json.dumps({"state": dag_run.state,
                  "tasks": {ti.task_id: ti.state for ti in dag_run.get_task_instances()}}))
""",
        )
        .strip()
        .splitlines()[-1]
    )
    assert recorded["state"] == "success"
    assert recorded["tasks"] == {task_id: "success" for task_id in _expected_tasks(config)}

    executed = completed_component_types(config)
    assert set(EXECUTING_COMPONENTS) <= executed, executed
    store = metadata_store.MetadataStore(metadata.connection_config(config))
    assert not [e for e in store.get_executions() if e.last_known_state == pb.Execution.CANCELED]
    versions = list((Path(config.serving_model_dir) / config.model_name).iterdir())
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()
    # Its tasks recorded which code ran, for the report and the model card.
    (airflow_run,) = store.get_contexts_by_type("pipeline_run")
    assert airflow_run.custom_properties[code_version.PROPERTY].string_value == (
        code_version.describe()
    )
