"""The Airflow DAG file: Airflow's DAGs folder is this `runners/` folder.

It only reads the pipeline compiled by `python runners/airflow_runner.py`
(see that module): parsing imports no TFX and touches no data. Settings come
from the environment (`CFPB_<NAME>`), as for every runner.
"""

from runners import airflow_runner
from settings.configs import PipelineConfig

# Airflow discovers DAGs as module-level globals.
DAG = airflow_runner.create_dag(PipelineConfig.from_env())
