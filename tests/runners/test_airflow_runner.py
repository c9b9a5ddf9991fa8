"""The Airflow DAG under real Airflow 2.11 (temporary AIRFLOW_HOME, SQLite):
import, graph, CLI listing, and a full `airflow dags test` run on a small sample."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import pipeline
from tests.conftest import (EXECUTING_COMPONENTS, completed_component_types, config_env,
                            small_config, sourced_env)

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
    env.update(config_env(config))

    def run(*args, timeout=600):
        result = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True,
                                timeout=timeout)
        assert result.returncode == 0, f"{args}\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
        return result.stdout

    run(AIRFLOW, "db", "migrate")
    return config, run


def test_dag_imports_and_matches_the_pipeline_graph(airflow):
    config, run = airflow
    listing = run(sys.executable, "-c", """
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
""")
    dag = json.loads(listing.strip().splitlines()[-1])
    expected = pipeline.create_pipeline(config)

    assert dag["import_errors"] == {}
    assert dag["dag_ids"] == ["cfpb-disputes"]
    assert dag["catchup"] is False
    assert dag["tags"] == ["cfpb", "tfx"]
    assert set(dag["tasks"]) == set(pipeline.component_ids(expected))
    assert {tuple(edge) for edge in dag["edges"]} == pipeline.component_edges(expected)


def test_airflow_cli_lists_the_dag_and_its_tasks(airflow):
    _, run = airflow
    assert "cfpb-disputes" in run(AIRFLOW, "dags", "list")
    tasks = run(AIRFLOW, "tasks", "list", "cfpb-disputes").split()
    assert {"CsvExampleGen", "Trainer", "Pusher"} <= set(tasks)


def test_airflow_dags_test_runs_the_whole_pipeline(airflow):
    config, run = airflow
    started = time.monotonic()
    run(AIRFLOW, "dags", "test", "cfpb-disputes", timeout=1800)
    print(f"airflow dags test took {time.monotonic() - started:.0f}s")

    # `dags test` records its run in Airflow's DB but does not register the DAG
    # in the `dag` table, which `airflow dags list-runs` requires.
    recorded = json.loads(run(sys.executable, "-c", """
import json
from airflow.models import DagRun
(dag_run,) = DagRun.find(dag_id="cfpb-disputes")
print(json.dumps({"state": dag_run.state,
                  "tasks": {ti.task_id: ti.state for ti in dag_run.get_task_instances()}}))
""").strip().splitlines()[-1])
    assert recorded["state"] == "success"
    assert recorded["tasks"] == {
        task_id: "success" for task_id in pipeline.component_ids(pipeline.create_pipeline(config))}

    executed = completed_component_types(config)
    assert set(EXECUTING_COMPONENTS) <= executed, executed
    versions = list((Path(config.serving_model_dir) / config.model_name).iterdir())
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()
