# Source this file (`source scripts/airflow_env.sh`) to point a local Airflow at
# this repository: the DAGs folder is runners/, the venv's `airflow` is on PATH,
# and Airflow's home (SQLite metadata DB, logs) defaults to build/airflow.
_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export AIRFLOW_HOME=${AIRFLOW_HOME:-$_repo/build/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$_repo/runners
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export PATH=$_repo/.venv/bin:$PATH
mkdir -p "$AIRFLOW_HOME"
unset _repo
