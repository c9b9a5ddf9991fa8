"""Compiles the pipeline for Airflow; its DAG (runners/airflow_dag.py) runs one TFX node per task.

    python runners/airflow_runner.py    # compile: after changing settings, code or the schema
    airflow dags list                   # Airflow parses airflow_dag.py: it reads the compiled file only

Compiling builds the graph from `pipeline/` and writes its TFX IR with the
node graph and a fingerprint of what it was compiled from (settings, the
graph's code, the curated schema) to `build/<pipeline_name>.airflow.json`
(`--airflow-compiled`). When Airflow parses the DAG file, `create_dag` reads
that JSON and makes one task per TFX node (task id = component id) plus
`prepare_spans` for local data and, with a tracking URI set, `mirror_to_mlflow`
after every node (docs/mlflow.md); it imports neither TFX nor TensorFlow and
touches no data. If the settings or code now differ from the compiled ones,
parsing fails with the command to recompile, rather than run a pipeline
other than the one on disk.

Each task runs its node with TFX's portable launcher (runners/node_launcher.py,
what every Kubeflow task runs), against the store the settings select, in
the Airflow run's id. So resolvers, ExampleGen's span driver, the cache and
the ML Metadata records are exactly those of a Beam run, and the two share
one cache on one store.

Why not TFX's AirflowDagRunner: it builds the whole pipeline whenever Airflow
parses the file (importing TFX, ~25 s a parse on 2 cores, in the scheduler's
parser and again in every task), and its legacy launcher records executions
in a layout of its own. Settings come from the environment (`CFPB_<NAME>`),
as for every runner; the compile command also takes them as flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from settings.configs import OUTPUT_LOCATIONS, REPO_ROOT, PipelineConfig, is_remote

PREPARE_TASK_ID = "prepare_spans"
MIRROR_TASK_ID = "mirror_to_mlflow"
INPUT_BASE_KEY = "input_base"  # tfx.types.standard_component_specs.INPUT_BASE_KEY
# The code that defines the compiled graph: a change here needs a recompile.
GRAPH_PACKAGES = ("pipeline", "components", "models")


def compiled_path(config: PipelineConfig) -> Path:
    if config.airflow_compiled:
        return Path(config.airflow_compiled)
    return REPO_ROOT / "build" / f"{config.pipeline_name}.airflow.json"


def fingerprint(config: PipelineConfig) -> dict[str, str]:
    """What the compiled IR depends on, each as a short digest (cheap: no TFX):
    the graph's settings (exactly what create_pipeline reads; the others are
    read when a task starts), the graph's code and the curated schema.

    The schema file is hashed where it is local; a remote one is checked when
    ImportSchemaGen's task starts (runners/node_launcher.py)."""
    settings = dataclasses.asdict(config.graph())
    code = hashlib.sha256()
    for package in GRAPH_PACKAGES:
        for source in sorted((REPO_ROOT / package).glob("*.py")):
            code.update(source.name.encode() + b"\0" + source.read_bytes())
    digests = {
        "settings": hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest(),
        "code": code.hexdigest(),
    }
    if not config.infer_schema and not is_remote(config.schema_path):
        digests["schema"] = hashlib.sha256(Path(config.schema_path).read_bytes()).hexdigest()
    return digests


def compile_pipeline(config: PipelineConfig) -> Path:
    """Compiles the graph to TFX IR and writes the file the DAG reads; returns its path."""
    from tfx.dsl.compiler import compiler

    from pipeline import pipeline
    from runners import node_launcher

    pipeline_ir = compiler.Compiler().compile(pipeline.create_pipeline(config.graph()))
    nodes = [node.pipeline_node for node in pipeline_ir.nodes]
    compiled = {
        "fingerprint": fingerprint(config),
        "nodes": {node.node_info.id: sorted(node.upstream_nodes) for node in nodes},
        # ExampleGen: the nodes that read the data root, so wait for prepare_spans.
        "data_readers": sorted(
            node.node_info.id for node in nodes if INPUT_BASE_KEY in node.parameters.parameters
        ),
        "pipeline_ir": node_launcher.encode_ir(pipeline_ir),
    }
    path = compiled_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(compiled, indent=1, sort_keys=True))
    return path


class StaleCompilation(RuntimeError):
    """The compiled pipeline does not match the current settings or code."""


def load_compiled(config: PipelineConfig) -> dict:
    path = compiled_path(config)
    recompile = "run `python runners/airflow_runner.py` with the same CFPB_* settings"
    if not path.is_file():
        raise StaleCompilation(f"no compiled pipeline at {path}: {recompile}")
    compiled = json.loads(path.read_text())
    current = fingerprint(config)
    changed = sorted(
        k
        for k in current.keys() | compiled["fingerprint"].keys()
        if current.get(k) != compiled["fingerprint"].get(k)
    )
    if changed:
        raise StaleCompilation(
            f"{path} was compiled from other {' and '.join(changed)} than this environment "
            f"has: {recompile}"
        )
    return compiled


def airflow_dag_config(config: PipelineConfig) -> dict:
    """Airflow's DAG arguments; the DAG id is the pipeline name."""
    return {
        "schedule": config.airflow_schedule,
        "start_date": datetime.datetime.strptime(config.airflow_start_date, "%Y-%m-%d"),
        "catchup": False,
        "max_active_runs": 1,  # two runs would race on the same pipeline root
        "tags": list(config.airflow_tags),
        "default_args": {
            "retries": config.airflow_retries,
            "retry_delay": datetime.timedelta(minutes=2),
        },
    }


def prepare_spans() -> None:
    """Lays out new bundled exports as spans (task `prepare_spans`)."""
    from airflow.exceptions import AirflowFailException

    from data import prepare, storage

    config = PipelineConfig.from_env()
    try:
        reports = prepare.prepare_configured(
            config, check=prepare.PREPARE_LOCATIONS + OUTPUT_LOCATIONS, to_train=True
        )
    except (prepare.PreparationError, storage.StorageError) as error:
        # Bad data or an unusable bucket: one line, and retrying cannot help.
        raise AirflowFailException(str(error)) from None
    for report in reports:
        print(report.summary())


def run_node(node_id: str, run_id: str) -> None:
    """Runs one TFX node of the compiled pipeline in pipeline run `run_id`."""
    from airflow.exceptions import AirflowFailException

    from runners import node_launcher, run_lock
    from settings import metadata

    config = PipelineConfig.from_env()
    try:
        compiled = load_compiled(config)
    except StaleCompilation as error:
        raise AirflowFailException(str(error)) from None  # a retry would fail the same way
    connection = metadata.connection_config(config)
    # The shared lock keeps a Beam run on the same SQLite store from taking
    # this task's RUNNING execution for an interrupted one; the task's own
    # lock keeps a second attempt of it out, and tells later runs, from any
    # machine, whether an execution it left RUNNING is still being worked on
    # (runners/run_lock.py). RunLocked while a Beam run or another attempt
    # holds them: Airflow retries the task after its retry delay.
    with run_lock.shared_task(config), run_lock.task_attempt(config, run_id, node_id):
        # Earlier runs' killed tasks that were never retried.
        with run_lock.left_by_the_dead(config, task_of_run=run_id) as is_dead:
            cancelled = run_lock.cancel_in(
                connection, config.pipeline_name, is_dead, run_lock.DEAD_TASK_NOTE
            )
        if cancelled:
            print("Marked as canceled, left running by a killed task: " + ", ".join(cancelled))
        node_launcher.launch(
            node_launcher.decode_ir(compiled["pipeline_ir"]), node_id, run_id, connection
        )


def mirror_to_mlflow() -> None:
    """Mirrors the run into MLflow (task `mirror_to_mlflow`, after every
    node, whatever they did): tracking/mlflow_mirror.py. It never fails:
    a server that is down is said in the log, and the next mirror catches up."""
    from settings import metadata
    from tracking import mlflow_mirror

    config = PipelineConfig.from_env()
    mlflow_mirror.mirror_after_run(config, metadata.connection_config(config), None, sys.stdout)


def create_dag(config: PipelineConfig):
    from airflow import DAG
    from airflow.operators.python import PythonOperator

    compiled = load_compiled(config)
    dag = DAG(dag_id=config.pipeline_name, **airflow_dag_config(config))
    tasks = {
        node_id: PythonOperator(
            task_id=node_id,
            python_callable=run_node,
            dag=dag,
            op_kwargs={"node_id": node_id, "run_id": "{{ run_id }}"},
        )
        for node_id in compiled["nodes"]
    }
    for node_id, upstream in compiled["nodes"].items():
        for upstream_id in upstream:
            tasks[upstream_id] >> tasks[node_id]
    if not is_remote(config.data_root):
        prepare = PythonOperator(task_id=PREPARE_TASK_ID, python_callable=prepare_spans, dag=dag)
        for node_id in compiled["data_readers"]:
            prepare >> tasks[node_id]
    if config.mlflow_tracking_uri:
        # all_done: a failed or refused run is mirrored too.
        mirror = PythonOperator(
            task_id=MIRROR_TASK_ID,
            python_callable=mirror_to_mlflow,
            trigger_rule="all_done",
            retries=0,
            dag=dag,
        )
        for task in tasks.values():
            task >> mirror
    return dag


def main(argv: Sequence[str] | None = None) -> int:
    from settings import configs

    parser = argparse.ArgumentParser(
        prog="python runners/airflow_runner.py",
        description="Compile the CFPB dispute pipeline for the Airflow DAG in "
        "runners/airflow_dag.py (Airflow then parses it without importing TFX).",
    )
    config, _ = configs.parse_args(parser, argv)
    path = compile_pipeline(config)
    compiled = json.loads(path.read_text())
    print(
        f"Wrote {path}: {len(compiled['nodes'])} nodes; Airflow's DAG "
        f"'{config.pipeline_name}' now runs them"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
