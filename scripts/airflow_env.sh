# Source this file (`source scripts/airflow_env.sh`) to point a local Airflow at
# this repository: the DAGs folder is runners/, the venv's `airflow` is on PATH,
# and Airflow's home (SQLite metadata DB, logs) defaults to build/airflow.
_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export AIRFLOW_HOME=${AIRFLOW_HOME:-$_repo/build/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$_repo/runners
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# Importing TFX takes 30-40 s on a 2-core machine, past Airflow's default 30 s
# DAG-parse timeout, which then reports the DAG as missing.
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=${AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT:-300}
export AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT=${AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT:-360}
# Each re-parse is a fresh process importing TFX (a core busy for ~40 s);
# Airflow's default re-parses every 30 s, which starves the tasks on a small
# machine. Restart the scheduler (or wait 5 min) after editing the pipeline.
export AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL=${AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL:-300}
export PATH=$_repo/.venv/bin:$PATH
mkdir -p "$AIRFLOW_HOME"
unset _repo
