"""The pipeline as an Airflow DAG, built by TFX's AirflowDagRunner.

Point Airflow's DAGs folder at this repository's `runners/` folder (see the
README, "Run on Airflow"); `runners/.airflowignore` keeps the other runners out
of DAG parsing. The DAG id is the pipeline name and each task id is a TFX
component id. Settings come from the environment (`CFPB_<NAME>`, as for every
runner): Airflow imports this file, so there are no command-line flags.
"""
from __future__ import annotations

import datetime
from pathlib import Path

from tfx.orchestration.airflow.airflow_dag_runner import (AirflowDagRunner,
                                                           AirflowPipelineConfig)

from data import prepare
from pipeline import metadata, pipeline
from pipeline.configs import PipelineConfig, is_remote


def airflow_dag_config(config: PipelineConfig) -> dict:
    """Airflow's DAG arguments; the DAG id is set by TFX to the pipeline name."""
    return {
        "schedule": config.airflow_schedule,
        "start_date": datetime.datetime.strptime(config.airflow_start_date, "%Y-%m-%d"),
        "catchup": False,
        "max_active_runs": 1,  # two runs would race on the same pipeline root
        "tags": list(config.airflow_tags),
        "default_args": {"retries": config.airflow_retries,
                         "retry_delay": datetime.timedelta(minutes=2)},
    }


def create_dag(config: PipelineConfig):
    if not is_remote(config.data_root):
        # Local data: lay out the bundled exports as spans. Idempotent and
        # cheap when nothing changed (Airflow re-parses this file often).
        prepare.prepare_all(Path(config.raw_data_dir), Path(config.data_root),
                            config.max_rows_per_span)
    tfx_pipeline = pipeline.create_pipeline(config, metadata.connection_config(config))
    return AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config(config))).run(tfx_pipeline)


# Airflow discovers DAGs as module-level globals.
DAG = create_dag(PipelineConfig.from_env())
